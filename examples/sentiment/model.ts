// The sentiment classifier, shared by the Node example (main.ts) and the browser demo (examples/web):
// word embedding + learned position embedding -> one light self-attention block (residual + LayerNorm,
// key-padding mask) -> attention pooling (a learned query over the words) -> dropout -> linear to 2 classes.
import { type Tensor, F, nn, ne, reshape, tidy, noGrad, add, arange } from 'kiln';
import { PAD_ID } from '../tokenizer';

export interface SentimentConfig {
  vocabSize: number;
  /** Embedding width (default 48). */
  dim: number;
  heads: number;
  /** Longest sentence the position table covers; longer ones are truncated. */
  maxLength: number;
  dropout: number;
  /** Include the self-attention block (default true); without it, the model is embedding + pooling. */
  selfAttention: boolean;
}

export const DEFAULT_CONFIG: Omit<SentimentConfig, 'vocabSize'> = { dim: 48, heads: 2, maxLength: 48, dropout: 0.5, selfAttention: false };

export class SentimentModel extends nn.Module {
  readonly config: SentimentConfig;
  embed: nn.Embedding;
  pos: nn.Embedding;
  attn: nn.MultiheadAttention | null;
  norm: nn.LayerNorm | null;
  pool: nn.AttentionPooling;
  drop: nn.Dropout;
  head: nn.Linear;

  constructor(config: SentimentConfig, seed = 1) {
    super();
    this.config = config;
    const { vocabSize, dim, maxLength } = config;
    this.embed = new nn.Embedding(vocabSize, dim, { seed });
    this.pos = new nn.Embedding(maxLength, dim, { seed: seed + 1 });
    this.attn = config.selfAttention ? new nn.MultiheadAttention(dim, config.heads, { seed: seed + 2 }) : null;
    this.norm = config.selfAttention ? new nn.LayerNorm(dim) : null;
    this.pool = new nn.AttentionPooling(dim, { seed: seed + 3 });
    this.drop = new nn.Dropout(config.dropout, { seed: seed + 4 });
    this.head = new nn.Linear(dim, 2, { seed: seed + 5 });
  }

  /** True for the real words of ids [B, N] (i32), false for padding. */
  static keyMask(ids: Tensor): Tensor {
    return ne(ids, PAD_ID);
  }

  /** The sequence the pooling attends over: [B, N, dim]. */
  encode(ids: Tensor, keyMask: Tensor): Tensor {
    const [, N] = ids.shape;
    return tidy(() => {
      const positions = reshape(arange(0, N, 1, { dtype: 'i32' }), [1, N]);
      let x = this.drop.forward(add(this.embed.forward(ids), this.pos.forward(positions)));
      if (this.attn && this.norm) x = this.norm.forward(add(x, this.attn.forward(x, x, x, { keyMask })));
      return x;
    });
  }

  /** ids [B, N] (i32, PAD_ID = padding) -> logits [B, 2]. */
  override forward(ids: Tensor): Tensor {
    return tidy(() => {
      const keyMask = SentimentModel.keyMask(ids);
      const h = this.encode(ids, keyMask);
      const pooled = this.pool.forward(h, { keyMask });
      return this.head.forward(this.drop.forward(pooled));
    });
  }

  /** Logits [B, 2] and the pooling weights [B, N] (0 on padding): which words the classifier read. */
  explain(ids: Tensor): { logits: Tensor; weights: Tensor } {
    return noGrad(() =>
      tidy(() => {
        const [B, N] = ids.shape;
        const keyMask = SentimentModel.keyMask(ids);
        const h = this.encode(ids, keyMask);
        const q = reshape(this.pool.query, [1, 1, this.config.dim]);
        const weights = reshape(F.attentionWeights(q, h, { attnMask: reshape(keyMask, [B, 1, N]) }), [B, N]);
        const pooled = this.pool.forward(h, { keyMask });
        return { logits: this.head.forward(this.drop.forward(pooled)), weights };
      }),
    );
  }
}
