/**
 * A small word tokenizer for the text examples: lower-cases, splits words from punctuation,
 * builds its vocabulary from training text only (a minimum count, most frequent first), and maps
 * unknown words to `<unk>`. Index 0 is always `<pad>` and 1 is `<unk>`, so a padded batch's
 * key-padding mask is simply `ids != 0`.
 *
 * Pure TypeScript with no Node imports, so the browser demo bundles it as is. The vocabulary
 * round-trips through JSON (`toJSON` / `WordTokenizer.fromJSON`).
 */

export const PAD = '<pad>';
export const UNK = '<unk>';
export const PAD_ID = 0;
export const UNK_ID = 1;

/**
 * Lower-cased word tokens: runs of letters and digits (with inner apostrophes kept, so "don't" and
 * "it's" stay whole), and each other non-space character as its own token ("great!!" -> great ! !).
 */
export function wordTokens(text: string): string[] {
  const out = text
    .toLowerCase()
    .replace(/[\u2018\u2019\u0060]/g, "'")
    .match(/[\p{L}\p{N}]+(?:'[\p{L}\p{N}]+)*|[^\s\p{L}\p{N}]/gu);
  return out ?? [];
}

export interface TokenizerOptions {
  /** Keep words seen at least this many times in the training text (default 2). */
  minCount?: number;
  /** Keep at most this many words, most frequent first (default: no limit). */
  maxSize?: number;
}

export interface TokenizerJSON {
  kind: 'kiln-word-tokenizer';
  version: 1;
  vocab: string[];
}

export interface Encoded {
  /** Token ids, row-major [rows, length], padded with PAD_ID. */
  ids: Int32Array;
  rows: number;
  length: number;
  /** The unpadded number of tokens of each row (after truncation). */
  lengths: number[];
}

export class WordTokenizer {
  readonly vocab: string[];
  private readonly index: Map<string, number>;

  constructor(vocab: string[]) {
    if (vocab[PAD_ID] !== PAD || vocab[UNK_ID] !== UNK) throw new Error(`WordTokenizer: the vocabulary must start with ${PAD}, ${UNK}`);
    this.vocab = vocab.slice();
    this.index = new Map(this.vocab.map((w, i) => [w, i]));
    if (this.index.size !== this.vocab.length) throw new Error('WordTokenizer: the vocabulary has duplicate words');
  }

  /** Builds the vocabulary from these texts (give only the training split). Ties break alphabetically, so it is deterministic. */
  static fit(texts: Iterable<string>, options: TokenizerOptions = {}): WordTokenizer {
    const minCount = options.minCount ?? 2;
    const counts = new Map<string, number>();
    for (const t of texts) for (const w of wordTokens(t)) counts.set(w, (counts.get(w) ?? 0) + 1);
    let words = [...counts.entries()]
      .filter(([w, c]) => c >= minCount && w !== PAD && w !== UNK)
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .map(([w]) => w);
    if (options.maxSize !== undefined) words = words.slice(0, Math.max(0, options.maxSize - 2));
    return new WordTokenizer([PAD, UNK, ...words]);
  }

  static fromJSON(json: TokenizerJSON | string): WordTokenizer {
    const j = (typeof json === 'string' ? JSON.parse(json) : json) as TokenizerJSON;
    if (j.kind !== 'kiln-word-tokenizer' || !Array.isArray(j.vocab)) throw new Error('WordTokenizer.fromJSON: not a kiln word-tokenizer vocabulary');
    return new WordTokenizer(j.vocab);
  }

  toJSON(): TokenizerJSON {
    return { kind: 'kiln-word-tokenizer', version: 1, vocab: this.vocab.slice() };
  }

  get size(): number {
    return this.vocab.length;
  }

  /** The tokens of a text as the model sees them (unknown words shown as <unk>), and their ids. */
  tokenize(text: string, maxLength = Infinity): { tokens: string[]; ids: number[] } {
    const words = wordTokens(text).slice(0, maxLength);
    const ids = words.map((w) => this.index.get(w) ?? UNK_ID);
    return { tokens: words, ids };
  }

  encode(text: string, maxLength = Infinity): number[] {
    return this.tokenize(text, maxLength).ids;
  }

  /**
   * Encodes texts into one padded [rows, length] block; length is the longest row, capped at maxLength,
   * and at least 1 (an empty text becomes one <pad>, which the `ids != PAD_ID` mask hides).
   */
  encodeBatch(texts: string[], maxLength = Infinity): Encoded {
    const rowsIds = texts.map((t) => this.encode(t, maxLength));
    const length = Math.max(1, ...rowsIds.map((r) => r.length));
    const ids = new Int32Array(texts.length * length); // PAD_ID is 0
    rowsIds.forEach((r, i) => ids.set(r, i * length));
    return { ids, rows: texts.length, length, lengths: rowsIds.map((r) => r.length) };
  }

  /** Fraction of tokens that are <unk> over these texts. */
  unknownRate(texts: string[]): number {
    let unk = 0;
    let all = 0;
    for (const t of texts) for (const id of this.encode(t)) {
      all++;
      if (id === UNK_ID) unk++;
    }
    return all ? unk / all : 0;
  }
}
