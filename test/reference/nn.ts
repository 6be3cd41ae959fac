// float64 references of nn modules composed from the op references: torch.nn.MultiheadAttention's forward,
// torch.nn.RMSNorm, and torch.nn.TransformerDecoderLayer (batch-first, post- or pre-norm) from a PyTorch-named state dict.
import { type Ref, numel, permute, ref, reshape } from './core';
import { add, gelu, layerNorm, linear, relu } from './ops';
import { sdpa } from './attention';

function rows(w: Ref, a: number, b: number): Ref {
  const cols = w.shape[1];
  return ref(Array.from(w.data).slice(a * cols, b * cols), [b - a, cols]);
}
function span(v: Ref, a: number, b: number): Ref {
  return ref(Array.from(v.data).slice(a, b), [b - a]);
}

export interface MhaRefOptions {
  isCausal?: boolean | 'upperLeft' | 'lowerRight';
  boolMask?: Ref;
  floatMask?: Ref;
}

/** torch.nn.MultiheadAttention's forward (batch-first x [B, Nq, E], kvx [B, Nk, E]), H query heads, Hk key/value heads. */
export function mhaRef(x: Ref, kvx: Ref, W: Ref, bW: Ref, Wo: Ref, bo: Ref, H: number, Hk: number, opts: MhaRefOptions = {}): Ref {
  const [B, Nq, E] = x.shape;
  const Nk = kvx.shape[1];
  const Dh = E / H;
  const kvDim = Hk * Dh;
  const q = linear(x, rows(W, 0, E), span(bW, 0, E));
  const k = linear(kvx, rows(W, E, E + kvDim), span(bW, E, E + kvDim));
  const v = linear(kvx, rows(W, E + kvDim, E + 2 * kvDim), span(bW, E + kvDim, E + 2 * kvDim));
  const heads = (t: Ref, n: number, h: number) => permute(reshape(t, [B, n, h, Dh]), [0, 2, 1, 3]);
  const o = sdpa(heads(q, Nq, H), heads(k, Nk, Hk), heads(v, Nk, Hk), opts).out;
  const merged = reshape(permute(o, [0, 2, 1, 3]), [B, Nq, E]);
  return linear(merged, Wo, bo);
}

/** torch.nn.RMSNorm: x / sqrt(mean(x^2 over the trailing normalizedShape dims) + eps) * weight. */
export function rmsNorm(x: Ref, normalizedShape: readonly number[], weight: Ref | null, eps: number): Ref {
  const n = numel(normalizedShape);
  const out = new Float64Array(x.data.length);
  for (let r = 0; r < x.data.length / n; r++) {
    let ms = 0;
    for (let k = 0; k < n; k++) ms += x.data[r * n + k] ** 2;
    const inv = 1 / Math.sqrt(ms / n + eps);
    for (let k = 0; k < n; k++) out[r * n + k] = x.data[r * n + k] * inv * (weight ? weight.data[k] : 1);
  }
  return { data: out, shape: [...x.shape] };
}

export interface DecoderRefOptions {
  normFirst?: boolean;
  activation?: 'relu' | 'gelu';
  tgtIsCausal?: boolean;
  tgtBoolMask?: Ref;
  memoryBoolMask?: Ref;
  eps?: number;
}

/** torch.nn.TransformerDecoderLayer (batch_first, dropout off) with the weights of a PyTorch state dict `sd`. */
export function decoderLayerRef(tgt: Ref, memory: Ref, sd: Record<string, Ref>, H: number, o: DecoderRefOptions = {}): Ref {
  const E = tgt.shape[2];
  const eps = o.eps ?? 1e-5;
  const attn = (prefix: string, q: Ref, kv: Ref, opts: MhaRefOptions) =>
    mhaRef(q, kv, sd[`${prefix}.in_proj_weight`], sd[`${prefix}.in_proj_bias`], sd[`${prefix}.out_proj.weight`], sd[`${prefix}.out_proj.bias`], H, H, opts);
  const norm = (i: number, x: Ref) => layerNorm(x, E, sd[`norm${i}.weight`], sd[`norm${i}.bias`], eps);
  const sa = (x: Ref) => attn('self_attn', x, x, { isCausal: o.tgtIsCausal, boolMask: o.tgtBoolMask });
  const ca = (x: Ref) => attn('multihead_attn', x, memory, { boolMask: o.memoryBoolMask });
  const ff = (x: Ref) => {
    const h = linear(x, sd['linear1.weight'], sd['linear1.bias']);
    return linear(o.activation === 'gelu' ? gelu(h) : relu(h), sd['linear2.weight'], sd['linear2.bias']);
  };
  let x = tgt;
  if (o.normFirst) {
    x = add(x, sa(norm(1, x)));
    x = add(x, ca(norm(2, x)));
    return add(x, ff(norm(3, x)));
  }
  x = norm(1, add(x, sa(x)));
  x = norm(2, add(x, ca(x)));
  return norm(3, add(x, ff(x)));
}
