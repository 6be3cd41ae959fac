// Interop with PyTorch: a file written by torch's safetensors (test/fixtures, made with torch 2.11 and
// safetensors 0.8 from nn.MultiheadAttention(8, 2, batch_first=True)) loads into kiln, and kiln's
// nn.MultiheadAttention with those weights reproduces torch's forward output.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { load, nn, tensor } from '../../src/index.node';

const dir = fileURLToPath(new URL('../fixtures/', import.meta.url));
const fixture = JSON.parse(readFileSync(dir + 'torch_mha.json', 'utf8')) as {
  values: Record<string, { shape: number[]; data: number[] }>;
  mha: { x: number[]; y: number[] };
};

describe('PyTorch interop', () => {
  it("kiln reads torch's safetensors file exactly (F32 and I32)", async () => {
    const sd = await load(new Uint8Array(readFileSync(dir + 'torch_mha.safetensors')));
    expect(Object.keys(sd).sort()).toEqual(Object.keys(fixture.values).sort());
    for (const [name, want] of Object.entries(fixture.values)) {
      expect(sd[name].shape, name).toEqual(want.shape);
      expect(Array.from(await sd[name].toArray()), name).toEqual(want.data.map((v) => (name === 'ids' ? v : Math.fround(v))));
    }
  });

  it('nn.MultiheadAttention loaded with torch weights reproduces torch forward', async () => {
    const sd = await load(new Uint8Array(readFileSync(dir + 'torch_mha.safetensors')));
    const { ids, ...weights } = sd;
    ids.dispose();
    const mha = new nn.MultiheadAttention(8, 2);
    mha.loadStateDict(weights);
    mha.eval();
    const x = tensor(Float32Array.from(fixture.mha.x), { shape: [2, 5, 8] });
    const y = await mha.forward(x).toArray();
    let worst = 0;
    y.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - fixture.mha.y[i]))));
    expect(worst).toBeLessThan(1e-5);
  });
});
