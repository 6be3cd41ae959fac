// Token tagger: the sum of a lower-cased word embedding, a word-shape (capitalisation) embedding,
// a 3-letter suffix embedding and a learned position embedding, then a small pre-norm transformer
// encoder with key-padding masks, and a per-token linear classifier.
import { type Tensor, nn, tensor, tidy } from 'kiln';

export interface TaggerConfig {
  words: number;
  shapes: number;
  suffixes: number;
  classes: number;
  maxLen: number;
  dModel: number;
  heads: number;
  layers: number;
  seed?: number;
}

/** One padded batch: ids [B, L] (i32) for words, shapes and suffixes, and lengths per sentence. */
export interface TagBatch {
  words: Int32Array;
  shapes: Int32Array;
  suffixes: Int32Array;
  lengths: number[];
  L: number;
}

export class Tagger extends nn.Module {
  wordEmb: nn.Embedding;
  shapeEmb: nn.Embedding;
  suffixEmb: nn.Embedding;
  posEmb: nn.Embedding;
  encoder: nn.ModuleList;
  norm: nn.LayerNorm;
  classifier: nn.Linear;
  readonly cfg: TaggerConfig;

  constructor(cfg: TaggerConfig) {
    super();
    this.cfg = cfg;
    const seed = cfg.seed ?? 0;
    const d = cfg.dModel;
    this.wordEmb = this.registerModule('word_emb', new nn.Embedding(cfg.words, d, { seed }));
    this.shapeEmb = this.registerModule('shape_emb', new nn.Embedding(cfg.shapes, d, { seed: seed + 1 }));
    this.suffixEmb = this.registerModule('suffix_emb', new nn.Embedding(cfg.suffixes, d, { seed: seed + 2 }));
    this.posEmb = this.registerModule('pos_emb', new nn.Embedding(cfg.maxLen, d, { seed: seed + 3 }));
    const layers = Array.from(
      { length: cfg.layers },
      (_, i) => new nn.TransformerEncoderLayer(d, cfg.heads, { dimFeedforward: 2 * d, dropout: 0, normFirst: true, activation: 'gelu', seed: seed + 100 * (i + 1) }),
    );
    this.encoder = this.registerModule('encoder', new nn.ModuleList(layers));
    this.norm = this.registerModule('norm', new nn.LayerNorm(d));
    this.classifier = this.registerModule('classifier', new nn.Linear(d, cfg.classes, { seed: seed + 4 }));
  }

  /** Logits [B, L, classes]; padding positions are neither attended to nor meaningful in the output. */
  override forward(batch: TagBatch): Tensor {
    return tidy(() => {
      const B = batch.lengths.length;
      const L = batch.L;
      const ids = (a: Int32Array) => tensor(a, { shape: [B, L], dtype: 'i32' });
      const pos = tensor(Int32Array.from({ length: L }, (_, i) => i), { shape: [1, L], dtype: 'i32' });
      const mask = new Uint8Array(B * L);
      batch.lengths.forEach((n, b) => mask.fill(1, b * L, b * L + n));
      const keyMask = tensor(mask, { shape: [B, L], dtype: 'bool' });
      // The embedding tables start N(0, 1); scaling the sum keeps the residual stream near unit size.
      let x = this.wordEmb.forward(ids(batch.words))
        .add(this.shapeEmb.forward(ids(batch.shapes)))
        .add(this.suffixEmb.forward(ids(batch.suffixes)))
        .add(this.posEmb.forward(pos))
        .mul(0.5);
      for (const layer of this.encoder) x = (layer as nn.TransformerEncoderLayer).forward(x, { keyMask });
      return this.classifier.forward(this.norm.forward(x));
    });
  }
}
