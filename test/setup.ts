// Every test file runs against the Node entry (Dawn + software Vulkan when no GPU).
import { init } from '../src/index.node';
import { beforeAll } from 'vitest';

beforeAll(async () => {
  await init();
});
