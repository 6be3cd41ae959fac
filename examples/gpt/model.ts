// A small decoder-only transformer (GPT): token and learned position embeddings (std 0.02, as GPT-2), pre-norm causal
// transformer layers, a final RMSNorm and a head tied to the token embedding (head.weight = tokEmb.weight), and
// sampling with temperature and top-k on the GPU through one KV cache per layer.
import { F, type KVCache, type Tensor, gather, multinomial, nn, noGrad, tensor, tidy, topk } from 'kiln';
import { type Generation, generate as decode } from '../charlm/model';

export interface GPTConfig {
  vocab: number;
  dModel: number;
  heads: number;
  layers: number;
  context: number;
  ff: number;
  dropout: number;
  seed: number;
}

export class GPT extends nn.Module {
  readonly cfg: GPTConfig;
  tokEmb: nn.Embedding;
  posEmb: nn.Embedding;
  blocks: nn.ModuleList<nn.TransformerEncoderLayer>;
  normOut: nn.RMSNorm;
  head: nn.Linear;

  constructor(cfg: GPTConfig) {
    super();
    this.cfg = cfg;
    const s = cfg.seed;
    this.tokEmb = new nn.Embedding(cfg.vocab, cfg.dModel, { seed: s });
    this.posEmb = new nn.Embedding(cfg.context, cfg.dModel, { seed: s + 1 });
    // GPT-2's initialisation, by assignment: the module notices the replaced parameters.
    this.tokEmb.weight = nn.normalParam([cfg.vocab, cfg.dModel], 0.02, s, 0);
    this.posEmb.weight = nn.normalParam([cfg.context, cfg.dModel], 0.02, s, 1);
    const layers = Array.from({ length: cfg.layers }, (_, i) =>
      new nn.TransformerEncoderLayer(cfg.dModel, cfg.heads, { dimFeedforward: cfg.ff, dropout: cfg.dropout, normFirst: true, isCausal: true, activation: 'gelu', seed: s + 100 * (i + 1) }),
    );
    this.blocks = new nn.ModuleList(layers);
    this.normOut = new nn.RMSNorm(cfg.dModel);
    this.head = new nn.Linear(cfg.dModel, cfg.vocab, { bias: false, seed: s + 7 });
    // Weight tying as PyTorch users write it: one tensor, trained by both uses, once in parameters().
    this.head.weight = this.tokEmb.weight;
  }

  /**
   * Logits [B, T, vocab] for tokens [B, T] (i32) at positions start..start+T-1. With `caches` (one per layer) the new
   * positions' keys and values are appended and attention reads every cached position (causal, bottom-right aligned).
   */
  override forward(tokens: Tensor, caches?: KVCache[], start = 0): Tensor {
    return tidy(() => {
      const T = tokens.shape[1];
      const pos = tensor(Int32Array.from({ length: T }, (_, i) => start + i), { shape: [1, T], dtype: 'i32' });
      let x = this.tokEmb.forward(tokens).add(this.posEmb.forward(pos));
      let i = 0;
      for (const layer of this.blocks) x = layer.forward(x, { cache: caches?.[i++] });
      return this.head.forward(this.normOut.forward(x));
    });
  }
}

/** Next-token cross-entropy of tokens x [B, T] against targets y [B*T]. */
export function lossOf(model: GPT, x: Tensor, y: Tensor): Tensor {
  const logits = model.forward(x);
  const [B, T, V] = logits.shape;
  return F.crossEntropy(logits.reshape([B * T, V]), y);
}

export interface SampleOptions {
  temperature: number;
  topK: number;
  seed: number;
}

/**
 * Samples the next token from the last position's logits [1, T, V] on the GPU: logits / temperature, the topK largest
 * (topk), softmax over them, one draw (multinomial, seeded), and the drawn index mapped back to a token id (gather).
 * Only the token id is read back.
 */
export async function sampleNext(logits: Tensor, o: SampleOptions, step: number): Promise<number> {
  const [, T, V] = logits.shape;
  const id = noGrad(() =>
    tidy(() => {
      const last = logits.slice(1, T - 1, T).reshape([1, V]).div(o.temperature);
      const { values, indices } = topk(last, Math.min(o.topK, V), -1);
      const pick = multinomial(values.softmax(-1), 1, { seed: (o.seed + 7919 * step) >>> 0 }); // [1, 1] index into the top k
      return gather(indices, 1, pick);
    }),
  );
  const token = (await id.toArray())[0];
  id.dispose();
  return token;
}

/**
 * Generates `count` tokens after `prompt` through the KV cache (or recomputing the window, useCache false), each drawn
 * by sampleNext: examples/charlm's decoding loop with the GPU sampler as its picker.
 */
export function generate(model: GPT, prompt: number[], count: number, o: SampleOptions, useCache = true): Promise<Generation> {
  return decode(model, prompt, count, useCache, (logits, step) => sampleNext(logits, o, step));
}
