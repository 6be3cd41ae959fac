// Node entry: WebGPU through Dawn (npm 'webgpu'), with a software Vulkan fallback.
import { setPlatform } from './gpu/platform';
import { nodePlatform } from './gpu/platform_node';
setPlatform(nodePlatform);
export * from './index';
