// Node entry: WebGPU through Dawn (npm 'webgpu'), with a software Vulkan fallback.
import { setPlatform } from './gpu/platform.js';
import { nodePlatform } from './gpu/platform_node.js';
setPlatform(nodePlatform);
export * from './index.js';
