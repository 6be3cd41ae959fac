import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as K from '../../src/index.node';
import { save, load, readHeader, CheckpointError, KilnError, tensor, nn, randn, memory, type Tensor } from '../../src/index';

function header(bytes: Uint8Array) {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return { n, json: new TextDecoder().decode(bytes.subarray(8, 8 + n)) };
}

/** Builds a safetensors file by hand, as the reference Python/Rust writer lays it out. */
function handMade(json: string, data: Uint8Array): Uint8Array {
  const pad = (8 - (json.length % 8)) % 8;
  const h = new TextEncoder().encode(json + ' '.repeat(pad));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

describe('safetensors', () => {
  it('writes the exact byte layout', async () => {
    const a = tensor([1, 2, 3]);
    const b = tensor([[7, -8]], { dtype: 'i32' });
    const bytes = await save({ a, b }, null, { metadata: { format: 'pt' } });
    const { n, json } = header(bytes);
    const expectedJson = '{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},"b":{"dtype":"I32","shape":[1,2],"data_offsets":[12,20]}}';
    expect(json.trimEnd()).toBe(expectedJson);
    expect(n % 8).toBe(0);
    expect(n).toBe(Math.ceil(expectedJson.length / 8) * 8);
    expect(json.slice(expectedJson.length)).toMatch(/^ *$/);
    expect(bytes.byteLength).toBe(8 + n + 20);
    const dv = new DataView(bytes.buffer, bytes.byteOffset + 8 + n);
    expect([dv.getFloat32(0, true), dv.getFloat32(4, true), dv.getFloat32(8, true)]).toEqual([1, 2, 3]);
    expect([dv.getInt32(12, true), dv.getInt32(16, true)]).toEqual([7, -8]);
    expect(readHeader(bytes).metadata).toEqual({ format: 'pt' });
    a.dispose();
    b.dispose();
  });

  it('reads a hand-made file with F32, I32, F16, BF16 and BOOL tensors', async () => {
    const data = new Uint8Array(8 + 4 + 4 + 4 + 2);
    const dv = new DataView(data.buffer);
    dv.setFloat32(0, 1.5, true);
    dv.setFloat32(4, -2, true);
    dv.setInt32(8, 42, true);
    dv.setUint16(12, 0x3c00, true); // f16 1.0
    dv.setUint16(14, 0xc100, true); // f16 -2.5
    dv.setUint16(16, 0x4049, true); // bf16 3.140625
    dv.setUint16(18, 0x3f80, true); // bf16 1.0
    data[20] = 1;
    data[21] = 0;
    const json = JSON.stringify({
      w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      i: { dtype: 'I32', shape: [], data_offsets: [8, 12] },
      h: { dtype: 'F16', shape: [2], data_offsets: [12, 16] },
      bf: { dtype: 'BF16', shape: [2, 1], data_offsets: [16, 20] },
      m: { dtype: 'BOOL', shape: [2], data_offsets: [20, 22] },
    });
    const sd = await load(handMade(json, data));
    expect(Array.from(await sd.w.toArray())).toEqual([1.5, -2]);
    expect(sd.i.shape).toEqual([]);
    expect(sd.i.dtype).toBe('i32');
    expect(await sd.i.item()).toBe(42);
    expect(Array.from(await sd.h.toArray())).toEqual([1, -2.5]);
    expect(sd.bf.shape).toEqual([2, 1]);
    expect(Array.from(await sd.bf.toArray())).toEqual([3.140625, 1]);
    expect(sd.m.dtype).toBe('bool');
    expect(Array.from(await sd.m.toArray())).toEqual([1, 0]);
    for (const t of Object.values(sd)) t.dispose();
  });

  it('round-trips through a file, keeping dtypes, shapes and values', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-st-'));
    const path = join(dir, 'x.safetensors');
    const sd: Record<string, Tensor> = { 'layer.0.weight': randn([3, 5], { seed: 1 }), idx: tensor([3, 1, 4], { dtype: 'i32' }), flag: tensor([true, false]), scalar: tensor(2.5 as any) , empty: tensor([], { shape: [0, 4] }) };
    const bytes = await save(sd, path);
    expect(new Uint8Array(readFileSync(path))).toEqual(bytes);
    const back = await load(path);
    expect(Object.keys(back)).toEqual(Object.keys(sd));
    for (const k of Object.keys(sd)) {
      expect(back[k].shape).toEqual(sd[k].shape);
      expect(back[k].dtype).toBe(sd[k].dtype);
      expect(Array.from(await back[k].toArray())).toEqual(Array.from(await sd[k].toArray()));
    }
    for (const t of [...Object.values(sd), ...Object.values(back)]) t.dispose();
  });

  it('a saved and loaded model gives identical outputs', async () => {
    const make = (seed: number) => new nn.Sequential(new nn.Linear(4, 6, { seed }), new nn.ReLU(), new nn.LayerNorm(6), new nn.Linear(6, 2, { seed: seed + 1 }));
    const m1 = make(1);
    const m2 = make(50);
    const bytes = await save(m1.stateDict());
    const sd = await load(bytes);
    m2.loadStateDict(sd);
    const x = randn([3, 4], { seed: 9 });
    const y1 = m1.forward(x), y2 = m2.forward(x);
    expect(Array.from(await y2.toArray())).toEqual(Array.from(await y1.toArray()));
    for (const t of [x, y1, y2, ...Object.values(sd)]) t.dispose();
    m1.dispose();
    m2.dispose();
  });

  it('rejects malformed and truncated files with a CheckpointError naming the problem', async () => {
    const base = memory().buffers;
    const good = await (async () => {
      const a = tensor([1, 2]);
      const b = await save({ a });
      a.dispose();
      return b;
    })();
    const expectErr = async (bytes: Uint8Array, re: RegExp) => {
      const p = load(bytes);
      await expect(p).rejects.toBeInstanceOf(CheckpointError);
      await expect(load(bytes)).rejects.toThrow(re);
    };
    await expectErr(good.subarray(0, 5), /too short/);
    await expectErr(good.subarray(0, 20), /truncated file: header says/);
    await expectErr(good.subarray(0, good.length - 1), /truncated file: tensor 'a' ends at byte 8/);
    await expectErr(handMade('{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', new Uint8Array(8)), /needs 12 bytes/);
    await expectErr(handMade('{"a":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}}', new Uint8Array(8)), /dtype "Q4"/);
    await expectErr(handMade('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', new Uint8Array(8)), /overlap/);
    await expectErr(handMade('{"a": nope', new Uint8Array(0)), /not valid UTF-8 JSON/);
    await expectErr(handMade('[1,2]', new Uint8Array(0)), /JSON object/);
    const huge = new Uint8Array(16);
    new DataView(huge.buffer).setBigUint64(0, 1n << 40n, true);
    await expectErr(huge, /exceeds/);
    expect(new CheckpointError('x')).toBeInstanceOf(KilnError);
    expect(memory().buffers).toBe(base);
  });
});

describe('names that look like object members', () => {
  it("save / load / loadStateDict keep '__proto__' and 'toString' as names", async () => {
    const before = K.memory().buffers;
    const a = K.tensor([1, 2]);
    const b = K.tensor([3]);
    const sd: Record<string, K.Tensor> = {};
    Object.defineProperty(sd, '__proto__', { value: a, enumerable: true, writable: true, configurable: true });
    sd.toString = b as never;
    const bytes = await K.save(sd);
    const back = await K.load(bytes);
    expect(Object.keys(back).sort()).toEqual(['__proto__', 'toString']);
    expect(Object.getPrototypeOf(back)).toBe(Object.prototype);
    expect(Array.from(await (back['__proto__'] as K.Tensor).toArray())).toEqual([1, 2]);
    expect(Array.from(await back.toString.toArray())).toEqual([3]);
    for (const t of [a, b, ...Object.values(back)]) t.dispose();
    expect(K.memory().buffers).toBe(before);
  });

  it('file errors are CheckpointErrors naming the path', async () => {
    await expect(K.load('/nonexistent/dir/x.safetensors')).rejects.toBeInstanceOf(K.CheckpointError);
    await expect(K.load('/nonexistent/dir/x.safetensors')).rejects.toThrow('/nonexistent/dir/x.safetensors');
    const t = K.tensor([1]);
    await expect(K.save({ t }, '/nonexistent/dir/y.safetensors')).rejects.toBeInstanceOf(K.CheckpointError);
    await expect(K.save({ t }, null, { meta: {} } as never)).rejects.toBeInstanceOf(K.ValueError);
    t.dispose();
  });
});
