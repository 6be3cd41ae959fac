// Soft attention over image patches: each patch is embedded (linear + learned position embedding + GELU),
// G "glimpses" each compute softmax-over-patches weights softmax(H W + b), the weighted sums of the patch
// features are concatenated and a linear layer classifies them.
import { type Tensor, F, nn, tidy, noGrad, add, matmul, transpose, reshape, randn } from 'kiln';

export interface PatchConfig {
  /** Image side in pixels (8 for the UCI digits, 28 for Fashion-MNIST). */
  side: number;
  /** Patch side in pixels; side must be a multiple of it. */
  patch: number;
  dim: number;
  glimpses: number;
  classes: number;
  dropout: number;
}

/** Images [n, side*side] (row-major) -> patches [n, P, patch*patch], P = (side/patch)^2 in row-major patch order. */
export function toPatches(pixels: ArrayLike<number>, n: number, side: number, patch: number, scale = 1): Float32Array {
  const g = side / patch;
  const out = new Float32Array(n * side * side);
  let o = 0;
  for (let i = 0; i < n; i++) {
    const base = i * side * side;
    for (let py = 0; py < g; py++)
      for (let px = 0; px < g; px++)
        for (let y = 0; y < patch; y++)
          for (let x = 0; x < patch; x++) out[o++] = pixels[base + (py * patch + y) * side + px * patch + x]! * scale;
  }
  return out;
}

export class PatchAttentionClassifier extends nn.Module {
  readonly config: PatchConfig;
  readonly numPatches: number;
  embed: nn.Linear;
  posEmbedding: Tensor;
  score: nn.Linear;
  drop: nn.Dropout;
  head: nn.Linear;

  constructor(config: PatchConfig, seed = 1) {
    super();
    if (config.side % config.patch !== 0) throw new Error(`PatchAttentionClassifier: side ${config.side} is not a multiple of patch ${config.patch}`);
    this.config = config;
    this.numPatches = (config.side / config.patch) ** 2;
    this.embed = new nn.Linear(config.patch * config.patch, config.dim, { seed });
    this.posEmbedding = this.registerParameter('pos_embedding', noGrad(() => randn([this.numPatches, config.dim], { seed: seed + 1 }).mul(0.1)));
    this.score = new nn.Linear(config.dim, config.glimpses, { seed: seed + 2 });
    this.drop = new nn.Dropout(config.dropout, { seed: seed + 3 });
    this.head = new nn.Linear(config.dim * config.glimpses, config.classes, { seed: seed + 4 });
  }

  /** Patch features [B, P, dim] and attention weights [B, P, G] (softmax over the P patches). */
  attend(patches: Tensor): { features: Tensor; weights: Tensor } {
    return tidy(() => {
      const features = F.gelu(add(this.embed.forward(patches), this.posEmbedding));
      const weights = F.softmax(this.score.forward(features), 1);
      return { features, weights };
    });
  }

  /** patches [B, P, patch*patch] -> logits [B, classes]. */
  override forward(patches: Tensor): Tensor {
    return tidy(() => {
      const [B] = patches.shape;
      const { features, weights } = this.attend(patches);
      const pooled = matmul(transpose(weights, 1, 2), features); // [B, G, dim]
      return this.head.forward(this.drop.forward(reshape(pooled, [B, this.config.glimpses * this.config.dim])));
    });
  }
}
