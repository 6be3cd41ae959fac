// Device acquisition and the one live device kiln computes on.
import { DeviceError, checkOptions } from '../errors.js';
import { platform } from './platform.js';
import { SUBGROUP_MATRIX_FEATURE, type SubgroupMatrixConfig, type SubgroupMatrixInfo, type SubgroupMatrixSpelling, matmulCandidates, probeSubgroupMatrix, readSubgroupMatrixConfigs } from './subgroup_matrix.js';

export interface InitOptions {
  /** Use a software adapter even where a hardware one exists (Node: lavapipe or SwiftShader). */
  forceSoftware?: boolean;
  powerPreference?: GPUPowerPreference;
  /** Extra Dawn toggles (Node only), e.g. 'enable-dawn-features=...'. */
  dawnToggles?: string[];
  /** Optional features kiln should not ask for even where the adapter has them. */
  disableFeatures?: string[];
  /** A device the caller already owns; kiln uses it instead of requesting one. */
  device?: GPUDevice;
}

export interface DeviceInfo {
  platform: 'node' | 'browser';
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  isSoftware: boolean;
  /** The Vulkan driver file Dawn was pointed at (Node), if kiln chose one. */
  icd?: string;
  features: string[];
  limits: Record<string, number>;
  /** With the subgroups feature: the sizes, and whether invocations fill subgroups in index order (probed). */
  subgroups?: { minSize: number; maxSize: number; inOrder: boolean };
  /**
   * With the feature chromium-experimental-subgroup-matrix (Node asks Dawn for it; browsers where they offer it): the
   * adapter's matrix configs, and the one kiln's matmul uses after its probe checked a tile product on the device.
   * Undefined where the device has no such feature (lavapipe, SwiftShader, most browsers today).
   */
  subgroupMatrix?: SubgroupMatrixInfo;
}

export interface KilnDevice {
  device: GPUDevice;
  info: DeviceInfo;
  hasTimestamps: boolean;
  hasF16: boolean;
  hasSubgroups: boolean;
  /** Subgroup sizes the adapter reports (0 when unknown or without subgroups). */
  subgroupMinSize: number;
  subgroupMaxSize: number;
  /**
   * Whether a 1-D workgroup's invocations fill subgroups in index order (lane = index % size), probed at init. WGSL
   * does not promise it; kernels whose subgroup variant relies on it fall back to workgroup memory without it.
   */
  subgroupsInOrder: boolean;
  /** The subgroup-matrix config, builtin spelling and workgroup width kiln's matrix kernels use; null without one. */
  subgroupMatrix: { config: SubgroupMatrixConfig; spelling: SubgroupMatrixSpelling; lanes: number } | null;
  /**
   * Set when the device was lost (a driver loss, `device.destroy()`, or replaced by `init()`); every later call fails
   * fast with this.
   */
  lost: string | null;
  /** Counts the devices kiln acquired: storage, pooled buffers and batches record it and must match the live one. */
  generation: number;
  /** Dawn's GPU instance and the adapter: held so they are not garbage-collected under the device. */
  keepAlive: unknown[];
}

const WANTED_FEATURES = ['timestamp-query', 'shader-f16', 'subgroups', SUBGROUP_MATRIX_FEATURE];
const WANTED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
] as const;

let current: KilnDevice | null = null;
let generation = 0;
/** Why each device of an earlier generation went away ('destroyed', 'unknown: ...', 'replaced by init()'). */
const lostReasons = new Map<number, string>();
let initInFlight: Promise<DeviceInfo> | null = null;
const lossListeners = new Set<(reason: string) => void>();
const initListeners = new Set<(d: KilnDevice) => void>();

export function onDeviceLost(fn: (reason: string) => void): void {
  lossListeners.add(fn);
}
const errorListeners = new Set<(message: string) => void>();
export function onUncapturedError(fn: (message: string) => void): void {
  errorListeners.add(fn);
}
export function onDeviceInit(fn: (d: KilnDevice) => void): void {
  initListeners.add(fn);
}

function looksSoftware(info: GPUAdapterInfo, icd?: string): boolean {
  const text = `${info.vendor} ${info.architecture} ${info.device} ${info.description}`.toLowerCase();
  return /swiftshader|llvmpipe|lavapipe|software|cpu/.test(text) || (!!icd && /lvp|swiftshader/.test(icd) && !text.trim());
}

/**
 * Marks a device lost (once): its reason is kept for the tensors that outlive it, and listeners (the buffer pool, the
 * command queue) drop what they hold of it, so nothing encoded for it is submitted and none of its buffers is reused.
 */
function markLost(kd: KilnDevice, reason: string): void {
  if (kd.lost) return;
  kd.lost = `the GPU device was lost (${reason})`;
  lostReasons.set(kd.generation, reason);
  if (current === kd) for (const fn of lossListeners) fn(kd.lost);
}

/** Resolves when the device's `lost` promise has, or after `ms` (a destroyed device reports its loss asynchronously). */
function lossReported(kd: KilnDevice, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    kd.device.lost.then(
      () => {
        clearTimeout(timer);
        resolve();
      },
      () => resolve(),
    );
  });
}

/**
 * Picks an adapter (hardware when there is one, else software), requests a device, and reports what it chose. With a
 * live device and no options that ask for another, returns it. After a loss (`device.destroy()` included, which kiln
 * sees at once) it waits for the loss to be reported and acquires a new device; tensors of the old one then throw.
 */
export async function init(options?: InitOptions): Promise<DeviceInfo> {
  const o = checkOptions('init', options, ['forceSoftware', 'powerPreference', 'dawnToggles', 'disableFeatures', 'device']);
  if (initInFlight) return initInFlight;
  initInFlight = initDevice(o);
  try {
    return await initInFlight;
  } finally {
    initInFlight = null;
  }
}

async function initDevice(options: InitOptions): Promise<DeviceInfo> {
  if (current && !current.lost && !options.device && !options.forceSoftware) return current.info;
  if (current && !current.lost) {
    const old = current;
    markLost(old, 'replaced by init()');
    old.device.destroy();
  }
  if (current) await lossReported(current, 2000);
  const plat = platform();
  let device: GPUDevice;
  let adapterInfo: GPUAdapterInfo;
  let icd: string | undefined;
  const keepAlive: unknown[] = [];
  if (options.device) {
    device = options.device;
    adapterInfo = (device as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo ?? ({ vendor: '', architecture: '', device: '', description: '' } as GPUAdapterInfo);
  } else {
    const { gpu, info } = await plat.getGPU({ forceSoftware: options.forceSoftware, dawnToggles: options.dawnToggles });
    icd = info.icd;
    keepAlive.push(gpu);
    let adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference ?? 'high-performance' });
    if (!adapter && plat.name === 'browser') adapter = await gpu.requestAdapter();
    if (!adapter) {
      const help =
        plat.name === 'node'
          ? (await import('./platform_help.js')).NO_ADAPTER_HELP
          : 'kiln found no WebGPU adapter in this browser (navigator.gpu.requestAdapter() returned null). Serve the page over https or http://127.0.0.1, and enable WebGPU.';
      throw new DeviceError(help);
    }
    const skip = new Set(options.disableFeatures ?? []);
    const requiredFeatures = WANTED_FEATURES.filter((f) => adapter!.features.has(f) && !skip.has(f)) as GPUFeatureName[];
    const requiredLimits: Record<string, number> = {};
    for (const name of WANTED_LIMITS) {
      const v = (adapter.limits as unknown as Record<string, number>)[name];
      if (typeof v === 'number') requiredLimits[name] = v;
    }
    keepAlive.push(adapter);
    device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
    adapterInfo = adapter.info;
  }
  const limits: Record<string, number> = {};
  for (const name of WANTED_LIMITS) limits[name] = (device.limits as unknown as Record<string, number>)[name];
  const features = [...device.features].filter((f) => WANTED_FEATURES.includes(f));
  const info: DeviceInfo = {
    platform: plat.name,
    vendor: adapterInfo.vendor ?? '',
    architecture: adapterInfo.architecture ?? '',
    device: adapterInfo.device ?? '',
    description: adapterInfo.description ?? '',
    isSoftware: looksSoftware(adapterInfo, icd),
    icd,
    features,
    limits,
  };
  const kd: KilnDevice = {
    device,
    info,
    hasTimestamps: device.features.has('timestamp-query'),
    hasF16: device.features.has('shader-f16'),
    hasSubgroups: device.features.has('subgroups'),
    subgroupMinSize: Number((adapterInfo as GPUAdapterInfo & { subgroupMinSize?: number }).subgroupMinSize ?? 0),
    subgroupMaxSize: Number((adapterInfo as GPUAdapterInfo & { subgroupMaxSize?: number }).subgroupMaxSize ?? 0),
    subgroupsInOrder: false,
    subgroupMatrix: null,
    lost: null,
    generation: ++generation,
    keepAlive,
  };
  current = kd;
  // Validation errors would otherwise only be printed: record them so the next sync point throws.
  device.addEventListener?.('uncapturederror', (ev: Event) => {
    if (kd.lost || current !== kd) return; // a lost device's errors say nothing about the live one
    const err = (ev as GPUUncapturedErrorEvent).error;
    for (const fn of errorListeners) fn(err?.message ?? String(err));
  });
  device.lost.then((l) => markLost(kd, l.reason === 'destroyed' ? 'destroyed' : `${l.reason}${l.message ? `: ${l.message}` : ''}`));
  // destroy() reports the loss only asynchronously; until then an init() would return the dead device and ops would
  // encode work for it. Wrap it so the loss is known at once.
  const destroy = device.destroy.bind(device);
  try {
    Object.defineProperty(device, 'destroy', {
      configurable: true,
      writable: true,
      value: () => {
        markLost(kd, 'destroyed');
        destroy();
      },
    });
  } catch {
    /* a frozen device object: its loss is seen when device.lost resolves */
  }
  if (kd.hasSubgroups) {
    const probe = await probeSubgroups(device).catch(() => null);
    if (probe) {
      kd.subgroupsInOrder = probe.inOrder;
      if (!kd.subgroupMinSize || !kd.subgroupMaxSize) kd.subgroupMinSize = kd.subgroupMaxSize = probe.size;
      kd.subgroupMinSize = Math.min(kd.subgroupMinSize, probe.size);
      kd.subgroupMaxSize = Math.max(kd.subgroupMaxSize, probe.size);
    }
    info.subgroups = { minSize: kd.subgroupMinSize, maxSize: kd.subgroupMaxSize, inOrder: kd.subgroupsInOrder };
  }
  if (device.features.has(SUBGROUP_MATRIX_FEATURE)) await setUpSubgroupMatrix(kd, adapterInfo);
  for (const fn of initListeners) fn(kd);
  return info;
}

/**
 * Records the adapter's subgroup-matrix configs and picks the first matmul candidate whose probe multiplies one tile
 * right on this device (with shader-f16, which the f16 configs need). A failed probe leaves the scalar kernels in use.
 */
async function setUpSubgroupMatrix(kd: KilnDevice, adapterInfo: GPUAdapterInfo): Promise<void> {
  const configs = readSubgroupMatrixConfigs(adapterInfo);
  const sm: SubgroupMatrixInfo = { configs, matmul: null, spelling: null };
  kd.info.subgroupMatrix = sm;
  const candidates = matmulCandidates(configs);
  if (!kd.hasF16) sm.reason = 'the device lacks shader-f16, which the f16 matrix configs need';
  else if (!candidates.length) sm.reason = 'no f16 x f16 -> f32 config with sides of 8 or 16';
  if (sm.reason) return;
  // A subgroup-matrix kernel's workgroup x size must be a multiple of the largest subgroup size.
  const lanes = Math.max(32, kd.subgroupMaxSize || 0);
  const errors: string[] = [];
  for (const config of candidates) {
    const r = await probeSubgroupMatrix(kd.device, config, lanes).catch((e: Error) => ({ spelling: null, errors: [e.message] }));
    if (r.spelling) {
      kd.subgroupMatrix = { config, spelling: r.spelling, lanes };
      sm.matmul = config;
      sm.spelling = r.spelling;
      return;
    }
    errors.push(`${config.M}x${config.N}x${config.K}: ${r.errors.join('; ')}`);
  }
  sm.reason = `no config passed the probe (${errors.join(' | ')})`;
}

/**
 * One 256-invocation workgroup reports, per invocation, its subgroup lane and size: are lanes index % size, with one
 * size? (Raw WebGPU: the kernel loader sits above this file.)
 */
async function probeSubgroups(device: GPUDevice): Promise<{ inOrder: boolean; size: number } | null> {
  const code = `enable subgroups;
@group(0) @binding(0) var<storage, read_write> out: array<u32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) i: u32, @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) size: u32) {
  out[i] = select(0u, 0x10000u, lane == i % size) | size;
}`;
  const module = device.createShaderModule({ code, label: 'kiln subgroup probe' });
  const pipeline = await device.createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const buf = device.createBuffer({ size: 1024, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const read = device.createBuffer({ size: 1024, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  try {
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: buf } }] }));
    pass.dispatchWorkgroups(1);
    pass.end();
    enc.copyBufferToBuffer(buf, 0, read, 0, 1024);
    device.queue.submit([enc.finish()]);
    await read.mapAsync(GPUMapMode.READ);
    const words = new Uint32Array(read.getMappedRange().slice(0));
    read.unmap();
    const size = words[0] & 0xffff;
    const inOrder = size > 0 && words.every((w) => (w & 0xffff) === size && (w & 0x10000) !== 0);
    return { inOrder, size };
  } finally {
    buf.destroy();
    read.destroy();
  }
}

/** The live device; throws a DeviceError when init() has not run or the device was lost. */
export function gpu(): KilnDevice {
  if (!current) throw new DeviceError('kiln: call `await init()` before creating tensors');
  if (current.lost) throw new DeviceError(`kiln: ${current.lost}; call \`await init()\` to acquire a new device`);
  return current;
}

/**
 * Throws a DeviceError unless `generation` is the live device's: a tensor (or buffer) made on a device that was lost
 * (destroyed, a driver loss) or replaced cannot be read or used, since its memory is gone. `what` names the thing in
 * the message ('tensor [2,3]').
 */
export function checkGeneration(fn: string, generation: number, what = 'tensor'): void {
  const kd = current;
  if (kd && kd.generation === generation && !kd.lost) return;
  const reason = lostReasons.get(generation) ?? 'it is no longer the live device';
  throw new DeviceError(`${fn}: ${what} belongs to a GPU device that was lost (${reason}); call \`await init()\` and recreate it`);
}

export function currentDeviceOrNull(): KilnDevice | null {
  return current;
}

export function deviceInfo(): DeviceInfo {
  return gpu().info;
}
