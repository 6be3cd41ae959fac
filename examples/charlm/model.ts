// A tiny GPT-style character model: token + learned position embeddings, pre-norm causal
// TransformerEncoderLayers, a final LayerNorm and a linear head. Also the two decoding paths
// (KV cache and full recompute) and a helper that returns one layer's attention weights.
import { F, KVCache, type Tensor, nn, noGrad, tensor, tidy } from 'kiln';

export interface CharLMConfig {
  vocab: number;
  dModel: number;
  heads: number;
  layers: number;
  context: number;
  /** Feed-forward width (default 4 * dModel). */
  ff?: number;
  seed?: number;
}

export class CharLM extends nn.Module {
  tokEmb: nn.Embedding;
  posEmb: nn.Embedding;
  blocks: nn.ModuleList;
  normOut: nn.LayerNorm;
  head: nn.Linear;
  readonly cfg: CharLMConfig;

  constructor(cfg: CharLMConfig) {
    super();
    this.cfg = cfg;
    const seed = cfg.seed ?? 0;
    this.tokEmb = this.registerModule('tok_emb', new nn.Embedding(cfg.vocab, cfg.dModel, { seed }));
    this.posEmb = this.registerModule('pos_emb', new nn.Embedding(cfg.context, cfg.dModel, { seed: seed + 1 }));
    const layers: nn.TransformerEncoderLayer[] = [];
    for (let i = 0; i < cfg.layers; i++) {
      layers.push(
        new nn.TransformerEncoderLayer(cfg.dModel, cfg.heads, {
          dimFeedforward: cfg.ff ?? 4 * cfg.dModel,
          dropout: 0,
          normFirst: true,
          isCausal: true,
          activation: 'gelu',
          seed: seed + 100 * (i + 1),
        }),
      );
    }
    this.blocks = this.registerModule('blocks', new nn.ModuleList(layers));
    this.normOut = this.registerModule('norm_out', new nn.LayerNorm(cfg.dModel));
    this.head = this.registerModule('head', new nn.Linear(cfg.dModel, cfg.vocab, { seed: seed + 7 }));
  }

  private layer(i: number): nn.TransformerEncoderLayer {
    return this.blocks.at(i) as nn.TransformerEncoderLayer;
  }

  /** Embeddings of tokens [B, T] (i32) placed at positions start..start+T-1: [B, T, d]. N(0,1) embeddings are scaled down. */
  private embed(tokens: Tensor, start: number): Tensor {
    const T = tokens.shape[1];
    const pos = tensor(Int32Array.from({ length: T }, (_, i) => start + i), { shape: [1, T], dtype: 'i32' });
    const x = this.tokEmb.forward(tokens).add(this.posEmb.forward(pos)).mul(0.1);
    pos.dispose();
    return x;
  }

  /**
   * Logits [B, T, vocab] for tokens [B, T] (T <= context), causal. With `caches` (one per layer),
   * the new tokens' keys and values are appended and attention reads every cached position;
   * `start` is then the position of tokens[:, 0].
   */
  override forward(tokens: Tensor, caches?: KVCache[], start = 0): Tensor {
    return tidy(() => {
      let x = this.embed(tokens, start);
      for (let i = 0; i < this.cfg.layers; i++) {
        // Causal either way: through a cache the layer aligns it at the bottom right, so the new tokens see every
        // cached position before them (one token, a chunk, or a prefill alike).
        x = this.layer(i).forward(x, { cache: caches?.[i] });
      }
      return this.head.forward(this.normOut.forward(x));
    });
  }

  /** Head-averaged attention weights [T, T] of layer `layerIndex` over tokens [1, T]. */
  attentionMap(tokens: Tensor, layerIndex = this.cfg.layers - 1): Tensor {
    return noGrad(() =>
      tidy(() => {
        let x = this.embed(tokens, 0);
        for (let i = 0; i < layerIndex; i++) x = this.layer(i).forward(x);
        const layer = this.layer(layerIndex);
        const h = layer.normFirst ? layer.norm1.forward(x) : x;
        const mha = layer.selfAttn;
        const E = mha.embedDim;
        const [B, T] = tokens.shape;
        const qkv = F.linear(h, mha.inProjWeight, mha.inProjBias ?? undefined);
        const split = (a: number) => qkv.slice(2, a, a + E).reshape([B, T, mha.numHeads, mha.headDim]).permute([0, 2, 1, 3]);
        const w = F.attentionWeights(split(0), split(E), { isCausal: true }); // [B, H, T, T]
        return w.mean(1).reshape([T, T]);
      }),
    );
  }
}

export interface Generation {
  tokens: number[];
  seconds: number;
  /** Generated tokens per second (prompt processing included in the time). */
  tokensPerSecond: number;
}

async function argmaxLast(logits: Tensor): Promise<number> {
  const [, T, V] = logits.shape;
  const last = logits.slice(1, T - 1, T).reshape([V]);
  const id = last.argmax();
  const v = (await id.toArray())[0];
  last.dispose();
  id.dispose();
  return v;
}

/** What generate needs of a model (CharLM, and examples/gpt's GPT). */
export interface DecoderLM {
  readonly cfg: { context: number; layers: number };
  forward(tokens: Tensor, caches?: KVCache[], start?: number): Tensor;
}

/**
 * Decoding, greedy unless `pick` chooses the next token from the logits [1, T, vocab] (examples/gpt samples on the
 * GPU). The model sees at most `context` positions, so both paths use the same window:
 * when it is full, the window restarts at the last context/2 tokens (the cached path refills its
 * caches with them in one causal prefill). Each step therefore attends over identical positions
 * with and without the cache, and the two outputs must agree.
 */
export async function generate(
  model: DecoderLM,
  prompt: number[],
  count: number,
  useCache: boolean,
  pick: (logits: Tensor, step: number) => Promise<number> = argmaxLast,
): Promise<Generation> {
  const ctx = model.cfg.context;
  const seq = prompt.slice(-ctx);
  let start = 0; // index in seq of the window's first token
  const caches = useCache ? Array.from({ length: model.cfg.layers }, () => new KVCache(ctx)) : undefined;
  let fed = 0; // tokens of the window already in the caches
  const t0 = performance.now();
  try {
    for (let step = 0; step < count; step++) {
      if (seq.length - start > ctx) {
        start = seq.length - ctx / 2;
        if (caches) for (const c of caches) c.reset();
        fed = 0;
      }
      const window = useCache ? seq.slice(start + fed) : seq.slice(start);
      const pos = useCache ? fed : 0;
      const next = await noGrad(() => {
        const inp = tensor(Int32Array.from(window), { shape: [1, window.length], dtype: 'i32' });
        const logits = model.forward(inp, caches, pos);
        inp.dispose();
        return pick(logits, step).finally(() => logits.dispose());
      });
      fed = seq.length - start;
      seq.push(next);
    }
  } finally {
    if (caches) for (const c of caches) c.dispose();
  }
  const seconds = (performance.now() - t0) / 1000;
  return { tokens: seq.slice(-count), seconds, tokensPerSecond: count / seconds };
}
