export const NO_ADAPTER_HELP =
  'kiln found no WebGPU adapter. Install a Vulkan driver: on Debian add the bookworm-backports apt source and run ' +
  "'apt-get install -y -t bookworm-backports mesa-vulkan-drivers' (Mesa lavapipe >= 23; bookworm's Mesa 22 is rejected by Dawn), " +
  "or 'apt-get install -y chromium' (its SwiftShader driver at /usr/lib/chromium/vk_swiftshader_icd.json); " +
  "'npm run setup' does this for you. For a hardware GPU, install its Vulkan driver.";
