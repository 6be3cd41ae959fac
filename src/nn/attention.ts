// Attention layers: MultiheadAttention (PyTorch's parameter names, so weights move both ways),
// TransformerEncoderLayer, TransformerDecoderLayer, AttentionPooling and AdditiveAttention (Bahdanau).
import { noteSeedDraw } from '../gpu/recorder.js';
import { DTypeError, ShapeError, ValueError, checkOptions, fmtShape } from '../errors.js';
import { tidy } from '../tensor/base.js';
import type { Tensor } from '../ops/tensor.js';
import { tensor } from '../ops/creation.js';
import { add, gelu, logicalAnd, mul, relu, tanh, where } from '../ops/elementwise.js';
import { linear, matmul } from '../ops/matmul.js';
import { softmax } from '../ops/nn_ops.js';
import { permute, reshape, slice, unsqueeze } from '../ops/views.js';
import { scaledDotProductAttention, type CausalOption, type SdpaOptions } from '../attention/sdpa.js';
import { type BlockMask, type MaskMod, type ScoreMod, flexAttention } from '../attention/flex.js';
import type { Expr } from '../ops/expr.js';
import { KVCache } from '../attention/kv_cache.js';
import { Module, RANDOM_CALLS, RANDOM_SEED, checkFeatures } from './module.js';
import { Dropout, LayerNorm, Linear } from './layers.js';

import { checkPositiveInt, checkSeed, constParam, uniformParam } from './init.js';

export interface MultiheadAttentionOptions {
  /** Key/value heads (grouped-query attention); defaults to numHeads. */
  kvHeads?: number;
  bias?: boolean;
  dropout?: number;
  seed?: number;
}

export interface AttentionCallOptions {
  /** bool (true = may attend) or f32 added to the scores; [Nq, Nk], [B, Nq, Nk] or [B, H, Nq, Nk]. */
  attnMask?: Tensor | null;
  /** bool [B, Nk]: true marks the real (non-padding) keys. */
  keyMask?: Tensor | null;
  /**
   * Causal attention. true is top-left aligned (PyTorch's is_causal) without a cache; with a cache it is bottom-right
   * aligned ('lowerRight'), so a query at absolute position t sees the cached keys 0..t. 'upperLeft' and 'lowerRight'
   * choose the alignment explicitly.
   */
  isCausal?: CausalOption;
  /** Incremental decoding: keys and values are appended to this cache and attention reads all of it. */
  cache?: KVCache | null;
  impl?: SdpaOptions['impl'];
  /**
   * Programmable attention (F.flexAttention): a score mod, a mask mod and a block mask over [B, H, Nq, Nk]. Through a
   * cache the mods see absolute query positions (qIdx = the cache's length before the append + i).
   */
  scoreMod?: ScoreMod | null;
  maskMod?: MaskMod | null;
  blockMask?: BlockMask | null;
}

const ATTENTION_CALL_KEYS = ['attnMask', 'keyMask', 'isCausal', 'cache', 'impl', 'scoreMod', 'maskMod', 'blockMask'] as const;

/** isCausal as a mask mod (for flexAttention, whose qIdx starts at queryOffset), combined with the user's. */
function causalMaskMod(isCausal: CausalOption | undefined, Nq: number, Nk: number, queryOffset: number, maskMod: MaskMod | null): MaskMod | null {
  if (!isCausal) return maskMod;
  const offset = (isCausal === 'lowerRight' ? Nk - Nq : 0) - queryOffset;
  const causal: MaskMod = (_b, _h, i, j) => j.le(i.add(offset));
  return maskMod ? (b, h, i, j) => (causal(b, h, i, j) as Expr).logicalAnd(maskMod(b, h, i, j)) : causal;
}

/** Combines a user mask and a key-padding mask into one mask broadcastable to [B, H, Nq, Nk]. */
function combineMasks(fn: string, attnMask: Tensor | null | undefined, keyMask: Tensor | null | undefined, B: number, Nk: number): Tensor | null {
  let m: Tensor | null = null;
  if (attnMask) {
    if (attnMask.rank === 3) m = unsqueeze(attnMask, 1);
    else m = attnMask.makeView(attnMask.shape, attnMask.strides, attnMask.offset);
  }
  if (!keyMask) return m;
  if (keyMask.dtype !== 'bool') throw new DTypeError(`${fn}: keyMask must be bool (true = a real key), got ${keyMask.dtype}`);
  if (keyMask.rank !== 2 || keyMask.shape[0] !== B || keyMask.shape[1] !== Nk) {
    throw new ShapeError(`${fn}: keyMask ${fmtShape(keyMask.shape)} must be [B, Nk] = [${B},${Nk}]`);
  }
  const km = reshape(keyMask, [B, 1, 1, Nk]);
  if (!m) return km;
  let out: Tensor;
  if (m.dtype === 'bool') out = logicalAnd(m, km);
  else {
    const ninf = tensor([-Infinity], { shape: [] });
    out = where(km, m, ninf);
    ninf.dispose();
  }
  m.dispose();
  km.dispose();
  return out;
}

/**
 * Multi-head attention, batch-first ([B, N, E]). The Q, K and V projections are one matmul for
 * self-attention, split by views; heads are split by strides, not copies. Parameter names follow
 * torch.nn.MultiheadAttention: in_proj_weight, in_proj_bias, out_proj.weight, out_proj.bias.
 */
export class MultiheadAttention extends Module {
  readonly embedDim: number;
  readonly numHeads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly dropoutP: number;
  inProjWeight: Tensor;
  inProjBias: Tensor | null;
  outProj: Linear;
  [RANDOM_SEED]: number;
  [RANDOM_CALLS] = 0;

  constructor(embedDim: number, numHeads: number, opts?: MultiheadAttentionOptions) {
    super();
    const options = checkOptions('MultiheadAttention', opts, ['kvHeads', 'bias', 'dropout', 'seed']);
    checkPositiveInt('MultiheadAttention', 'embedDim', embedDim);
    checkPositiveInt('MultiheadAttention', 'numHeads', numHeads);
    if (embedDim % numHeads !== 0) throw new ValueError(`MultiheadAttention: embedDim ${embedDim} must be divisible by numHeads ${numHeads}`);
    const kvHeads = options.kvHeads ?? numHeads;
    checkPositiveInt('MultiheadAttention', 'kvHeads', kvHeads);
    if (numHeads % kvHeads !== 0) throw new ValueError(`MultiheadAttention: numHeads ${numHeads} must be a multiple of kvHeads ${kvHeads}`);
    const p = options.dropout ?? 0;
    if (!(p >= 0 && p < 1)) throw new ValueError(`MultiheadAttention: dropout must be in [0, 1), got ${p}`);
    this.embedDim = embedDim;
    this.numHeads = numHeads;
    this.kvHeads = kvHeads;
    this.headDim = embedDim / numHeads;
    this.dropoutP = p;
    const seed = (this[RANDOM_SEED] = checkSeed('MultiheadAttention', options.seed));
    const kvDim = kvHeads * this.headDim;
    const rows = embedDim + 2 * kvDim;
    // xavier_uniform over the packed [3E, E] weight, as PyTorch.
    const bound = Math.sqrt(6 / (rows + embedDim));
    this.inProjWeight = this.registerParameter('in_proj_weight', uniformParam([rows, embedDim], bound, seed, 0));
    this.inProjBias = this.registerParameter('in_proj_bias', options.bias === false ? null : constParam([rows], 0));
    this.outProj = this.registerModule('out_proj', new Linear(embedDim, embedDim, { bias: options.bias !== false, seed: seed + 1 }));
    if (this.outProj.bias) {
      // PyTorch zeroes out_proj.bias at construction.
      const z = constParam([embedDim], 0);
      this.outProj.bias.dispose();
      this.outProj.bias = this.outProj.registerParameter('bias', z);
    }
  }

  /** [B, N, heads * Dh] -> [B, heads, N, Dh] as a strided view. */
  private heads(x: Tensor, heads: number): Tensor {
    const [B, N] = x.shape;
    return permute(reshape(x, [B, N, heads, this.headDim]), [0, 2, 1, 3]);
  }

  /** The next call's attention-dropout seed (a compiled step's replay draws the same stream). */
  private drawSeed(): number {
    const draw = () => (this[RANDOM_SEED] + 7919 * ++this[RANDOM_CALLS]) >>> 0;
    const seed = draw();
    noteSeedDraw(seed, draw);
    return seed;
  }

  override forward(query: Tensor, key: Tensor = query, value: Tensor = key, callOptions?: AttentionCallOptions): Tensor {
    const name = `MultiheadAttention(${this.embedDim}, ${this.numHeads})`;
    const options = checkOptions(name, callOptions, ATTENTION_CALL_KEYS);
    for (const [arg, t] of [['query', query], ['key', key], ['value', value]] as const) {
      checkFeatures(name, t, this.embedDim);
      if (t.rank !== 3) throw new ShapeError(`${name}: ${arg} ${fmtShape(t.shape)} must be batch-first [B, N, E]`);
    }
    const [B, Nq] = query.shape;
    if (key.shape[0] !== B || value.shape[0] !== B) throw new ShapeError(`${name}: batch sizes differ: query ${fmtShape(query.shape)}, key ${fmtShape(key.shape)}, value ${fmtShape(value.shape)}`);
    if (key.shape[1] !== value.shape[1]) throw new ShapeError(`${name}: key ${fmtShape(key.shape)} and value ${fmtShape(value.shape)} disagree on the number of keys`);
    const E = this.embedDim;
    const kvDim = this.kvHeads * this.headDim;
    const W = this.inProjWeight, bW = this.inProjBias;
    // One scope: every intermediate (projections, head views, cache views, the mask) is freed when it closes.
    return tidy(() => {
      let q: Tensor, k: Tensor, v: Tensor;
      if (query === key && key === value) {
        // One matmul for Q, K and V; split by views.
        const qkv = linear(query, W, bW);
        q = slice(qkv, 2, 0, E);
        k = slice(qkv, 2, E, E + kvDim);
        v = slice(qkv, 2, E + kvDim, E + 2 * kvDim);
      } else {
        const rows = (t: Tensor | null, a: number, b: number) => (t ? slice(t, 0, a, b) : null);
        q = linear(query, rows(W, 0, E)!, rows(bW, 0, E));
        k = linear(key, rows(W, E, E + kvDim)!, rows(bW, E, E + kvDim));
        v = linear(value, rows(W, E + kvDim, E + 2 * kvDim)!, rows(bW, E + kvDim, E + 2 * kvDim));
      }
      const qh = this.heads(q, this.numHeads);
      let kh = this.heads(k, this.kvHeads);
      let vh = this.heads(v, this.kvHeads);
      if (options.cache) ({ k: kh, v: vh } = options.cache.append(kh, vh));
      // The new queries are the last Nq of the Nk cached positions: causal attention through a cache is bottom-right aligned.
      const isCausal = options.cache && options.isCausal === true ? 'lowerRight' : options.isCausal;
      const dropout = {
        dropoutP: this.training ? this.dropoutP : 0,
        seed: this.training && this.dropoutP > 0 ? this.drawSeed() : undefined,
      };
      if (options.scoreMod || options.maskMod || options.blockMask) {
        if (options.attnMask || options.keyMask) throw new ValueError(`${name}: attnMask / keyMask and scoreMod / maskMod / blockMask do not combine; express the mask as a maskMod`);
        if (options.blockMask && isCausal) throw new ValueError(`${name}: with a blockMask, put causality in the block mask's maskMod`);
        if (options.blockMask && options.cache) throw new ValueError(`${name}: a blockMask lists blocks at query positions 0..Nq-1; decode through a cache without one`);
        // Through a cache the mods see absolute query positions (the new queries are the last Nq of the Nk cached).
        const queryOffset = options.cache ? kh.shape[2] - Nq : 0;
        const maskMod = options.blockMask ? null : causalMaskMod(isCausal, Nq, kh.shape[2], queryOffset, options.maskMod ?? null);
        const attn = flexAttention(qh, kh, vh, { scoreMod: options.scoreMod ?? null, maskMod, blockMask: options.blockMask ?? null, queryOffset, ...dropout });
        return this.outProj.forward(reshape(permute(attn, [0, 2, 1, 3]), [B, Nq, E]));
      }
      const mask = combineMasks(name, options.attnMask, options.keyMask, B, kh.shape[2]);
      const attn = scaledDotProductAttention(qh, kh, vh, {
        attnMask: mask,
        isCausal,
        ...dropout,
        impl: options.impl,
      });
      // [B, H, Nq, Dh] -> [B, Nq, H, Dh] -> [B, Nq, E] (one copy), then the output projection.
      return this.outProj.forward(reshape(permute(attn, [0, 2, 1, 3]), [B, Nq, E]));
    });
  }
}

export interface TransformerEncoderLayerOptions {
  dimFeedforward?: number;
  dropout?: number;
  activation?: 'relu' | 'gelu';
  /** Pre-norm (normFirst: true) or post-norm (PyTorch's default). */
  normFirst?: boolean;
  /** Causal self-attention by default (a call's isCausal overrides it). */
  isCausal?: boolean;
  layerNormEps?: number;
  kvHeads?: number;
  seed?: number;
}

/** PyTorch's TransformerEncoderLayer (batch-first): self_attn, linear1, linear2, norm1, norm2. */
export class TransformerEncoderLayer extends Module {
  selfAttn: MultiheadAttention;
  linear1: Linear;
  linear2: Linear;
  norm1: LayerNorm;
  norm2: LayerNorm;
  dropout: Dropout;
  readonly normFirst: boolean;
  readonly isCausal: boolean;
  readonly activation: 'relu' | 'gelu';

  constructor(dModel: number, nHead: number, opts?: TransformerEncoderLayerOptions) {
    super();
    const options = checkOptions('TransformerEncoderLayer', opts, ['dimFeedforward', 'dropout', 'activation', 'normFirst', 'isCausal', 'layerNormEps', 'kvHeads', 'seed']);
    const seed = checkSeed('TransformerEncoderLayer', options.seed);
    const ff = options.dimFeedforward ?? 2048;
    const p = options.dropout ?? 0.1;
    this.selfAttn = this.registerModule('self_attn', new MultiheadAttention(dModel, nHead, { dropout: p, kvHeads: options.kvHeads, seed }));
    this.linear1 = this.registerModule('linear1', new Linear(dModel, ff, { seed: seed + 11 }));
    this.linear2 = this.registerModule('linear2', new Linear(ff, dModel, { seed: seed + 13 }));
    this.norm1 = this.registerModule('norm1', new LayerNorm(dModel, { eps: options.layerNormEps ?? 1e-5 }));
    this.norm2 = this.registerModule('norm2', new LayerNorm(dModel, { eps: options.layerNormEps ?? 1e-5 }));
    this.dropout = this.registerModule('dropout', new Dropout(p, { seed: seed + 17 }));
    this.normFirst = !!options.normFirst;
    this.isCausal = !!options.isCausal;
    this.activation = options.activation ?? 'relu';
  }

  private block(x: Tensor, o: AttentionCallOptions): Tensor {
    return tidy(() => this.dropout.forward(this.selfAttn.forward(x, x, x, { ...o, isCausal: o.isCausal ?? this.isCausal })));
  }
  private ff(x: Tensor): Tensor {
    return tidy(() => {
      const h = this.linear1.forward(x);
      const a = this.activation === 'gelu' ? gelu(h) : relu(h);
      return this.dropout.forward(this.linear2.forward(this.dropout.forward(a)));
    });
  }

  override forward(x: Tensor, opts?: AttentionCallOptions): Tensor {
    const options = checkOptions('TransformerEncoderLayer', opts, ATTENTION_CALL_KEYS);
    return tidy(() => {
      if (this.normFirst) {
        const h = add(x, this.block(this.norm1.forward(x), options));
        return add(h, this.ff(this.norm2.forward(h)));
      }
      const h = this.norm1.forward(add(x, this.block(x, options)));
      return this.norm2.forward(add(h, this.ff(h)));
    });
  }
}

/** A learned query vector attends over a sequence [B, N, dim] and returns the pooled [B, dim]. */
export class AttentionPooling extends Module {
  query: Tensor;
  readonly dim: number;
  constructor(dim: number, opts?: { seed?: number }) {
    super();
    const options = checkOptions('AttentionPooling', opts, ['seed']);
    checkPositiveInt('AttentionPooling', 'dim', dim);
    this.dim = dim;
    this.query = this.registerParameter('query', uniformParam([dim], 1 / Math.sqrt(dim), checkSeed('AttentionPooling', options.seed), 0));
  }
  override forward(x: Tensor, opts?: { keyMask?: Tensor | null; impl?: SdpaOptions['impl'] }): Tensor {
    const options = checkOptions(`AttentionPooling(${this.dim})`, opts, ['keyMask', 'impl']);
    checkFeatures(`AttentionPooling(${this.dim})`, x, this.dim);
    if (x.rank !== 3) throw new ShapeError(`AttentionPooling(${this.dim}): input ${fmtShape(x.shape)} must be [B, N, dim]`);
    const [B, N] = x.shape;
    return tidy(() => {
      const q = reshape(this.query, [1, 1, this.dim]);
      const mask = options.keyMask ? combineMasks('AttentionPooling', null, options.keyMask, B, N) : null;
      const m3 = mask ? reshape(mask, [B, 1, N]) : null;
      const out = scaledDotProductAttention(q, x, x, { attnMask: m3, impl: options.impl });
      return reshape(out, [B, this.dim]);
    });
  }
  /** The pooling weights [B, N], for looking at them. */
  weights(x: Tensor): Tensor {
    const [B, N] = x.shape;
    return tidy(() => {
      const scores = mul(matmul(x, reshape(this.query, [this.dim, 1])), 1 / Math.sqrt(this.dim));
      return softmax(reshape(scores, [B, N]), -1);
    });
  }
}

/** Bahdanau attention: score(q_i, k_j) = v^T tanh(W q_i + U k_j), softmax over j, weighted sum of values. */
export class AdditiveAttention extends Module {
  wQuery: Linear;
  wKey: Linear;
  v: Tensor;
  constructor(queryDim: number, keyDim: number, hiddenDim: number, opts?: { seed?: number }) {
    super();
    const options = checkOptions('AdditiveAttention', opts, ['seed']);
    const seed = checkSeed('AdditiveAttention', options.seed);
    this.wQuery = this.registerModule('w_query', new Linear(queryDim, hiddenDim, { bias: false, seed }));
    this.wKey = this.registerModule('w_key', new Linear(keyDim, hiddenDim, { bias: true, seed: seed + 1 }));
    this.v = this.registerParameter('v', uniformParam([hiddenDim], 1 / Math.sqrt(hiddenDim), seed, 2));
  }
  /** Attention weights [B, Nq, Nk] for queries [B, Nq, Dq] and keys [B, Nk, Dk]. */
  weights(query: Tensor, keys: Tensor, keyMask?: Tensor | null): Tensor {
    return tidy(() => {
      const wq = unsqueeze(this.wQuery.forward(query), 2); // [B, Nq, 1, A]
      const uk = unsqueeze(this.wKey.forward(keys), 1); // [B, 1, Nk, A]
      const e = tanh(add(wq, uk)); // [B, Nq, Nk, A]
      let scores = matmul(e, this.v); // [B, Nq, Nk]
      if (keyMask) {
        const [B, Nk] = keyMask.shape;
        const ninf = tensor([-Infinity], { shape: [] });
        scores = where(reshape(keyMask, [B, 1, Nk]), scores, ninf);
      }
      return softmax(scores, -1);
    });
  }
  override forward(query: Tensor, keys: Tensor, values: Tensor = keys, opts?: { keyMask?: Tensor | null }): Tensor {
    const options = checkOptions('AdditiveAttention', opts, ['keyMask']);
    return tidy(() => matmul(this.weights(query, keys, options.keyMask), values));
  }
}



/** As the encoder layer's (isCausal is the self-attention's default, which a call's tgtIsCausal overrides), plus bias. */
export interface TransformerDecoderLayerOptions extends TransformerEncoderLayerOptions {
  bias?: boolean;
}

export interface DecoderCallOptions {
  /** The self-attention's mask over [Ntgt, Ntgt] (bool: true = may attend, or f32 added), as PyTorch's tgt_mask. */
  tgtMask?: Tensor | null;
  /** The cross-attention's mask over [Ntgt, Nmem], as PyTorch's memory_mask. */
  memoryMask?: Tensor | null;
  /** bool [B, Ntgt]: true marks real target positions (PyTorch's tgt_key_padding_mask, inverted as everywhere in kiln). */
  tgtKeyMask?: Tensor | null;
  /** bool [B, Nmem]: true marks real memory positions. */
  memoryKeyMask?: Tensor | null;
  /** Causal self-attention (PyTorch's tgt_is_causal); bottom-right aligned through a cache. */
  tgtIsCausal?: CausalOption;
  /** Causal cross-attention (PyTorch's memory_is_causal). */
  memoryIsCausal?: CausalOption;
  /** Incremental decoding: the self-attention's keys and values are appended here and attention reads all of it. */
  cache?: KVCache | null;
  impl?: SdpaOptions['impl'];
}

const DECODER_CALL_KEYS = ['tgtMask', 'memoryMask', 'tgtKeyMask', 'memoryKeyMask', 'tgtIsCausal', 'memoryIsCausal', 'cache', 'impl'] as const;

/**
 * PyTorch's TransformerDecoderLayer (batch-first): self-attention over the target, cross-attention over a memory,
 * feed-forward; modules self_attn, multihead_attn, linear1, linear2, norm1, norm2, norm3, dropout, dropout1..3, so
 * PyTorch state dicts load as they are. forward(tgt [B, Nt, E], memory [B, Nm, E], options) -> [B, Nt, E].
 */
export class TransformerDecoderLayer extends Module {
  selfAttn: MultiheadAttention;
  multiheadAttn: MultiheadAttention;
  linear1: Linear;
  linear2: Linear;
  norm1: LayerNorm;
  norm2: LayerNorm;
  norm3: LayerNorm;
  dropout: Dropout;
  dropout1: Dropout;
  dropout2: Dropout;
  dropout3: Dropout;
  readonly normFirst: boolean;
  readonly isCausal: boolean;
  readonly activation: 'relu' | 'gelu';

  constructor(dModel: number, nHead: number, opts?: TransformerDecoderLayerOptions) {
    super();
    const fn = 'TransformerDecoderLayer';
    const options = checkOptions(fn, opts, ['dimFeedforward', 'dropout', 'activation', 'normFirst', 'isCausal', 'layerNormEps', 'bias', 'kvHeads', 'seed']);
    const seed = checkSeed(fn, options.seed);
    const ff = options.dimFeedforward ?? 2048;
    checkPositiveInt(fn, 'dimFeedforward', ff);
    const p = options.dropout ?? 0.1;
    const activation = options.activation ?? 'relu';
    if (activation !== 'relu' && activation !== 'gelu') throw new ValueError(`${fn}: activation must be 'relu' or 'gelu', got ${JSON.stringify(activation)}`);
    const bias = options.bias ?? true;
    const eps = options.layerNormEps ?? 1e-5;
    this.selfAttn = this.registerModule('self_attn', new MultiheadAttention(dModel, nHead, { dropout: p, kvHeads: options.kvHeads, bias, seed }));
    this.multiheadAttn = this.registerModule('multihead_attn', new MultiheadAttention(dModel, nHead, { dropout: p, kvHeads: options.kvHeads, bias, seed: seed + 5 }));
    this.linear1 = this.registerModule('linear1', new Linear(dModel, ff, { bias, seed: seed + 11 }));
    this.linear2 = this.registerModule('linear2', new Linear(ff, dModel, { bias, seed: seed + 13 }));
    this.norm1 = this.registerModule('norm1', new LayerNorm(dModel, { eps, bias }));
    this.norm2 = this.registerModule('norm2', new LayerNorm(dModel, { eps, bias }));
    this.norm3 = this.registerModule('norm3', new LayerNorm(dModel, { eps, bias }));
    this.dropout = this.registerModule('dropout', new Dropout(p, { seed: seed + 17 }));
    this.dropout1 = this.registerModule('dropout1', new Dropout(p, { seed: seed + 19 }));
    this.dropout2 = this.registerModule('dropout2', new Dropout(p, { seed: seed + 23 }));
    this.dropout3 = this.registerModule('dropout3', new Dropout(p, { seed: seed + 29 }));
    this.normFirst = !!options.normFirst;
    this.isCausal = !!options.isCausal;
    this.activation = activation;
  }

  override forward(tgt: Tensor, memory: Tensor, opts?: DecoderCallOptions): Tensor {
    const name = `TransformerDecoderLayer(${this.selfAttn.embedDim}, ${this.selfAttn.numHeads})`;
    const options = checkOptions(name, opts, DECODER_CALL_KEYS);
    // Both inputs are checked here, before the self-attention encodes any work.
    for (const [arg, t] of [['tgt', tgt], ['memory', memory]] as const) {
      checkFeatures(`${name}: ${arg}`, t, this.selfAttn.embedDim);
      if (t.rank !== 3) throw new ShapeError(`${name}: ${arg} ${fmtShape(t.shape)} must be batch-first [B, N, E]`);
    }
    if (tgt.shape[0] !== memory.shape[0]) throw new ShapeError(`${name}: tgt ${fmtShape(tgt.shape)} and memory ${fmtShape(memory.shape)} have different batch sizes`);
    const sa = (x: Tensor) =>
      this.dropout1.forward(this.selfAttn.forward(x, x, x, { attnMask: options.tgtMask, keyMask: options.tgtKeyMask, isCausal: options.tgtIsCausal ?? this.isCausal, cache: options.cache, impl: options.impl }));
    const ca = (x: Tensor) =>
      this.dropout2.forward(this.multiheadAttn.forward(x, memory, memory, { attnMask: options.memoryMask, keyMask: options.memoryKeyMask, isCausal: options.memoryIsCausal, impl: options.impl }));
    const ff = (x: Tensor) => {
      const h = this.linear1.forward(x);
      const a = this.activation === 'gelu' ? gelu(h) : relu(h);
      return this.dropout3.forward(this.linear2.forward(this.dropout.forward(a)));
    };
    return tidy(() => {
      let x = tgt;
      if (this.normFirst) {
        x = add(x, sa(this.norm1.forward(x)));
        x = add(x, ca(this.norm2.forward(x)));
        return add(x, ff(this.norm3.forward(x)));
      }
      x = this.norm1.forward(add(x, sa(x)));
      x = this.norm2.forward(add(x, ca(x)));
      return this.norm3.forward(add(x, ff(x)));
    });
  }
}
