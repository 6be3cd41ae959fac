// A small convolutional network with self-attention over the positions of its last feature map:
//   [Conv2d 3x3 -> MaxPool2d 2x2 -> BatchNorm2d -> ReLU] x 3 (16, 32, 64 channels for Fashion-MNIST)
//   -> tokens [B, P, C] (P positions of the last map, C its channels) + learned position embedding
//   -> multi-head self-attention, added back to the tokens (a residual) -> LayerNorm
//   -> global average pooling over the positions -> dropout -> linear classifier.
import { type Tensor, F, nn, tidy, noGrad, add, randn, reshape, transpose, slice, permute } from 'kiln';

export interface VisionConfig {
  /** Image side in pixels (28 for Fashion-MNIST, 8 for the UCI digits). */
  side: number;
  channels: [number, number, number];
  /** Which stages end in 2x2 max pooling (the 8x8 digits skip the last, so 2x2 positions remain). */
  pool: [boolean, boolean, boolean];
  heads: number;
  classes: number;
  dropout: number;
}

/** Positions per side of the last feature map. */
export function gridSide(config: VisionConfig): number {
  return config.pool.reduce((s, p) => (p ? Math.floor(s / 2) : s), config.side);
}

class Stage extends nn.Module {
  conv: nn.Conv2d;
  bn: nn.BatchNorm2d;
  pool: nn.MaxPool2d | null;
  constructor(inC: number, outC: number, pool: boolean, seed: number) {
    super();
    // No conv bias: the batch norm that follows has its own. Pooling comes straight after the convolution, so batch
    // norm and ReLU (and their backward passes) touch a quarter of the elements.
    this.conv = new nn.Conv2d(inC, outC, 3, { padding: 1, bias: false, seed });
    this.bn = new nn.BatchNorm2d(outC);
    this.pool = pool ? new nn.MaxPool2d(2) : null;
  }
  override forward(x: Tensor): Tensor {
    return tidy(() => {
      const c = this.conv.forward(x);
      return F.relu(this.bn.forward(this.pool ? this.pool.forward(c) : c));
    });
  }
}

export class ConvAttentionClassifier extends nn.Module {
  readonly config: VisionConfig;
  readonly positions: number;
  features: nn.Sequential;
  posEmbedding: Tensor;
  attn: nn.MultiheadAttention;
  norm: nn.LayerNorm;
  drop: nn.Dropout;
  head: nn.Linear;

  constructor(config: VisionConfig, seed = 1) {
    super();
    this.config = config;
    const [c1, c2, c3] = config.channels;
    this.features = new nn.Sequential(
      new Stage(1, c1, config.pool[0], seed),
      new Stage(c1, c2, config.pool[1], seed + 1),
      new Stage(c2, c3, config.pool[2], seed + 2),
    );
    this.positions = gridSide(config) ** 2;
    this.posEmbedding = this.registerParameter('pos_embedding', noGrad(() => randn([this.positions, c3], { seed: seed + 3 }).mul(0.02)));
    this.attn = new nn.MultiheadAttention(c3, config.heads, { seed: seed + 4 });
    this.norm = new nn.LayerNorm(c3);
    this.drop = new nn.Dropout(config.dropout, { seed: seed + 5 });
    this.head = new nn.Linear(c3, config.classes, { seed: seed + 6 });
  }

  /** images [B, 1, side, side] -> tokens [B, P, C] (the last feature map's positions, row-major, plus positions). */
  tokens(images: Tensor): Tensor {
    return tidy(() => {
      const f = this.features.forward(images); // [B, C, g, g]
      const [B, C] = f.shape;
      return add(transpose(reshape(f, [B, C, this.positions]), 1, 2), this.posEmbedding);
    });
  }

  /** images [B, 1, side, side] -> logits [B, classes]. */
  override forward(images: Tensor): Tensor {
    return tidy(() => {
      const t = this.tokens(images);
      const h = this.norm.forward(add(t, this.attn.forward(t))); // self-attention with a residual
      return this.head.forward(this.drop.forward(h.mean(1)));
    });
  }

  /** The attention probabilities [B, heads, P, P] of the self-attention layer (query rows, key columns). */
  attentionWeights(images: Tensor): Tensor {
    return noGrad(() => tidy(() => {
      const t = this.tokens(images);
      const [B, P, E] = t.shape;
      const H = this.config.heads, D = E / H;
      const w = this.attn.inProjWeight, b = this.attn.inProjBias;
      const proj = (i: number) => {
        const y = F.linear(t, slice(w, 0, i * E, (i + 1) * E), b ? slice(b, 0, i * E, (i + 1) * E) : null);
        return permute(reshape(y, [B, P, H, D]), [0, 2, 1, 3]);
      };
      return F.attentionWeights(proj(0), proj(1));
    }));
  }
}
