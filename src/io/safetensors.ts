// Checkpoints in the safetensors format (https://github.com/huggingface/safetensors):
//   8 bytes: N, the header length, unsigned 64-bit little-endian
//   N bytes: a JSON object {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {string: string}},
//            padded with spaces to a multiple of 8 bytes
//   the data: each tensor's raw little-endian bytes, row-major, at data_offsets relative to the data start.
import { CheckpointError, ValueError, checkOptions } from '../errors.js';
import { halfBitsToFloat, toHalfBits } from '../tensor/half.js';
import { Tensor } from '../ops/tensor.js';
import { tensor } from '../ops/creation.js';

export { CheckpointError };

/** Sets an own, enumerable property, so that every name ('__proto__', 'toString', ...) is kept as data. */
function setOwn<V>(obj: Record<string, V>, key: string, value: V): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

const WRITE_DTYPE = { f32: 'F32', f16: 'F16', i32: 'I32', bool: 'BOOL' } as const;
const BYTES: Record<string, number> = { F32: 4, I32: 4, BOOL: 1, F16: 2, BF16: 2, F64: 8, I64: 8, I8: 1, U8: 1, I16: 2 };
const MAX_HEADER = 100 * 1024 * 1024;

export interface SaveOptions {
  /** String-to-string metadata stored under "__metadata__". */
  metadata?: Record<string, string>;
}

/** Serialises {name: Tensor} to safetensors bytes; also writes them to `path` under Node. Reads the tensors back (async). */
export async function save(stateDict: Record<string, Tensor>, path?: string | null, options?: SaveOptions): Promise<Uint8Array> {
  const o = checkOptions('save', options, ['metadata']);
  if (stateDict === null || typeof stateDict !== 'object' || Array.isArray(stateDict)) throw new ValueError(`save: expects an object {name: Tensor}, got ${String(stateDict)}`);
  if (path !== undefined && path !== null && typeof path !== 'string') throw new ValueError(`save: path must be a string (or omitted), got ${typeof path}`);
  const names = Object.keys(stateDict);
  for (const n of names) {
    if (n === '__metadata__') throw new ValueError("save: '__metadata__' is reserved for metadata; pass it as options.metadata");
    if (!(stateDict[n] instanceof Tensor)) throw new ValueError(`save: entry '${n}' is not a Tensor`);
    stateDict[n].buf('save');
  }
  const meta = o.metadata;
  if (meta !== undefined) {
    if (meta === null || typeof meta !== 'object') throw new ValueError(`save: metadata must be an object of strings, got ${String(meta)}`);
    for (const [k, v] of Object.entries(meta)) if (typeof v !== 'string') throw new ValueError(`save: metadata '${k}' must be a string, got ${typeof v}`);
  }
  const datas = await Promise.all(names.map((n) => stateDict[n].toArray()));
  const header: Record<string, unknown> = {};
  if (meta && Object.keys(meta).length) setOwn(header, '__metadata__', meta);
  const chunks: Uint8Array[] = [];
  let offset = 0;
  names.forEach((n, i) => {
    const t = stateDict[n];
    const d = datas[i];
    const bytes =
      t.dtype === 'bool' ? Uint8Array.from(d as Uint8Array)
      : t.dtype === 'f16' ? new Uint8Array(toHalfBits(d, d.length).buffer) // the values are exact halves: no rounding here
      : new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
    setOwn(header, n, { dtype: WRITE_DTYPE[t.dtype], shape: t.shape.slice(), data_offsets: [offset, offset + bytes.byteLength] });
    chunks.push(bytes);
    offset += bytes.byteLength;
  });
  let json = JSON.stringify(header);
  const enc = new TextEncoder();
  let headerBytes = enc.encode(json);
  const padded = Math.ceil(headerBytes.byteLength / 8) * 8;
  if (padded !== headerBytes.byteLength) {
    json += ' '.repeat(padded - headerBytes.byteLength);
    headerBytes = enc.encode(json);
  }
  const out = new Uint8Array(8 + headerBytes.byteLength + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(headerBytes.byteLength), true);
  out.set(headerBytes, 8);
  let pos = 8 + headerBytes.byteLength;
  for (const c of chunks) {
    out.set(c, pos);
    pos += c.byteLength;
  }
  if (path) {
    const fs = await nodeFs('save');
    try {
      await fs.writeFile(path, out);
    } catch (e) {
      throw new CheckpointError(`save: cannot write '${path}': ${(e as Error).message}`);
    }
  }
  return out;
}

async function nodeFs(fn: string): Promise<{ writeFile(p: string, d: Uint8Array): Promise<void>; readFile(p: string): Promise<Uint8Array> }> {
  // A computed specifier keeps bundlers from pulling node:fs into the browser build.
  const spec = ['node', 'fs/promises'].join(':');
  try {
    return (await import(/* @vite-ignore */ spec)) as never;
  } catch {
    throw new ValueError(`${fn}: file paths need Node (node:fs); in a browser pass or use the bytes instead`);
  }
}

export interface LoadResult {
  [name: string]: Tensor;
}

/** Parsed header without reading any tensor: names, dtypes, shapes, offsets and metadata. */
export function readHeader(bytes: Uint8Array): { tensors: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>; metadata: Record<string, string> | null; dataStart: number } {
  if (bytes.byteLength < 8) throw new CheckpointError(`load: file is ${bytes.byteLength} bytes, too short for the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n64 = view.getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER)) throw new CheckpointError(`load: header length ${n64} exceeds the ${MAX_HEADER}-byte limit (corrupt file?)`);
  const n = Number(n64);
  if (8 + n > bytes.byteLength) throw new CheckpointError(`load: truncated file: header says ${n} bytes of JSON but only ${bytes.byteLength - 8} bytes follow`);
  let parsed: unknown;
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n));
    parsed = JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(`load: header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new CheckpointError('load: header must be a JSON object');
  const dataStart = 8 + n;
  const dataLen = bytes.byteLength - dataStart;
  let metadata: Record<string, string> | null = null;
  const tensors: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }> = {};
  const ranges: [number, number, string][] = [];
  for (const [name, entry] of Object.entries(parsed as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (entry === null || typeof entry !== 'object' || Object.values(entry).some((v) => typeof v !== 'string')) throw new CheckpointError('load: __metadata__ must be an object of strings');
      metadata = entry as Record<string, string>;
      continue;
    }
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!e || typeof e !== 'object') throw new CheckpointError(`load: entry '${name}' is not an object`);
    if (typeof e.dtype !== 'string' || !(e.dtype in BYTES)) throw new CheckpointError(`load: tensor '${name}' has dtype ${JSON.stringify(e.dtype)}; kiln reads F32, I32, F16, BF16, F64, I64, I16, I8, U8 and BOOL`);
    if (!Array.isArray(e.shape) || e.shape.some((d) => !Number.isInteger(d) || d < 0)) throw new CheckpointError(`load: tensor '${name}' has an invalid shape ${JSON.stringify(e.shape)}`);
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isInteger(d) && d >= 0) || off[1] < off[0]) throw new CheckpointError(`load: tensor '${name}' has invalid data_offsets ${JSON.stringify(off)}`);
    const numel = (e.shape as number[]).reduce((a, b) => a * b, 1);
    const need = numel * BYTES[e.dtype];
    if (off[1] - off[0] !== need) throw new CheckpointError(`load: tensor '${name}' ${e.dtype} [${(e.shape as number[]).join(',')}] needs ${need} bytes but data_offsets [${off.join(', ')}] span ${off[1] - off[0]}`);
    if (off[1] > dataLen) throw new CheckpointError(`load: truncated file: tensor '${name}' ends at byte ${off[1]} of the data but the data section has ${dataLen} bytes`);
    setOwn(tensors, name, { dtype: e.dtype, shape: e.shape as number[], data_offsets: [off[0], off[1]] });
    ranges.push([off[0], off[1], name]);
  }
  ranges.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < ranges.length; i++) {
    if (ranges[i][0] < ranges[i - 1][1]) throw new CheckpointError(`load: tensors '${ranges[i - 1][2]}' and '${ranges[i][2]}' overlap in the data section`);
  }
  return { tensors, metadata, dataStart };
}

/**
 * Reads a safetensors checkpoint (a path under Node, or the bytes) into {name: Tensor}. F32, I32 and
 * BOOL load as they are; F16, BF16 and F64 convert to f32; I64, I16, I8 and U8 to i32 (I64 values
 * must fit). The result's `__metadata__` is not included; use readHeader for it.
 */
export async function load(pathOrBytes: string | Uint8Array | ArrayBuffer): Promise<LoadResult> {
  let bytes: Uint8Array;
  if (typeof pathOrBytes === 'string') {
    const fs = await nodeFs('load');
    let b: Uint8Array;
    try {
      b = await fs.readFile(pathOrBytes);
    } catch (e) {
      throw new CheckpointError(`load: cannot read '${pathOrBytes}': ${(e as Error).message}`);
    }
    bytes = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  } else if (pathOrBytes instanceof Uint8Array) bytes = pathOrBytes;
  else if (pathOrBytes instanceof ArrayBuffer) bytes = new Uint8Array(pathOrBytes);
  else throw new ValueError(`load: expects a path or the bytes (Uint8Array / ArrayBuffer), got ${pathOrBytes === null ? 'null' : typeof pathOrBytes}`);
  const { tensors, dataStart } = readHeader(bytes);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: LoadResult = {};
  try {
    for (const [name, { dtype, shape, data_offsets }] of Object.entries(tensors)) {
      const base = dataStart + data_offsets[0];
      const n = shape.reduce((a, b) => a * b, 1);
      let t: Tensor;
      if (dtype === 'F32' || dtype === 'F16' || dtype === 'BF16' || dtype === 'F64') {
        const a = new Float32Array(n);
        for (let i = 0; i < n; i++) {
          if (dtype === 'F32') a[i] = view.getFloat32(base + 4 * i, true);
          else if (dtype === 'F16') a[i] = halfBitsToFloat(view.getUint16(base + 2 * i, true));
          else if (dtype === 'BF16') {
            const u = view.getUint16(base + 2 * i, true) << 16;
            a[i] = new Float32Array(new Uint32Array([u >>> 0]).buffer)[0];
          } else a[i] = view.getFloat64(base + 8 * i, true);
        }
        t = tensor(a, { shape });
      } else if (dtype === 'BOOL') {
        t = tensor(Uint8Array.from(bytes.subarray(base, base + n), (v) => (v ? 1 : 0)), { shape, dtype: 'bool' });
      } else {
        const a = new Int32Array(n);
        for (let i = 0; i < n; i++) {
          if (dtype === 'I32') a[i] = view.getInt32(base + 4 * i, true);
          else if (dtype === 'I16') a[i] = view.getInt16(base + 2 * i, true);
          else if (dtype === 'I8') a[i] = view.getInt8(base + i);
          else if (dtype === 'U8') a[i] = view.getUint8(base + i);
          else {
            const v = view.getBigInt64(base + 8 * i, true);
            if (v > 2147483647n || v < -2147483648n) throw new CheckpointError(`load: tensor '${name}' (I64) holds ${v}, outside the i32 range`);
            a[i] = Number(v);
          }
        }
        t = tensor(a, { shape, dtype: 'i32' });
      }
      setOwn(out, name, t);
    }
  } catch (e) {
    for (const t of Object.values(out)) t.dispose();
    throw e;
  }
  return out;
}
