// Tag mapping and token features for the Brown proper-noun task. Pure TypeScript (no Node imports).

/**
 * Brown tags -> classes. Every tag whose base is a proper noun (`np`, `nps`) is tagged; every other
 * tag is O. Headline (`-hl`), possessive (`$`), contraction (`+bez`) and plural (`nps`) variants
 * fold into the base; `-tl` (the word is part of a title or a multi-word name, e.g. "Fulton/np-tl
 * County/nn-tl Grand/jj-tl Jury/nn-tl") is kept as its own class because it behaves differently.
 *   O      all other tags                                              (92.4% of tokens)
 *   NP     np, np$, np-hl, np+bez, nps, nps$, nps-hl                    (7.2%)
 *   NP-TL  np-tl, np$-tl, np-tl-hl, nps-tl, nps$-tl                     (0.8%)
 * Plural proper nouns (nps, 235 tokens in the whole section) are too rare for a class of their own
 * in a five-minute run; they count as NP.
 */
export const CLASSES = ['O', 'NP', 'NP-TL'] as const;
export const O = 0;
export const NP_TL = 2;

export function classOf(tag: string): number {
  const parts = tag.split('-');
  const base = parts[0].replace(/[$+].*$/, '');
  if (base !== 'np' && base !== 'nps') return O;
  return parts.includes('tl') ? NP_TL : 1;
}

/** Word shapes: capitalisation is the strongest cue for proper nouns, but sentence-initial words are capitalised too. */
export const SHAPES = ['<pad>', 'lower', 'Capitalized', 'ALLCAPS', 'X', 'MiXed', 'digit', 'punct', 'other'] as const;

export function shapeOf(word: string): number {
  if (/\d/.test(word)) return 6;
  if (!/\p{L}/u.test(word)) return 7;
  const letters = word.replace(/[^\p{L}]/gu, '');
  if (letters === letters.toLowerCase()) return 1;
  if (letters.length === 1) return 4;
  if (letters === letters.toUpperCase()) return 3;
  if (letters[0] === letters[0].toUpperCase() && letters.slice(1) === letters.slice(1).toLowerCase()) return 2;
  if (letters[0] === letters[0].toUpperCase()) return 5;
  return 8;
}

export const PAD_ID = 0;
export const UNK_ID = 1;

/** A lower-cased vocabulary built from training data only: index 0 is <pad>, 1 is <unk>. */
export class Vocab {
  readonly items: string[];
  private readonly index: Map<string, number>;
  constructor(items: string[]) {
    this.items = items;
    this.index = new Map(items.map((w, i) => [w, i]));
  }
  static build(tokens: Iterable<string>, minCount: number): Vocab {
    const counts = new Map<string, number>();
    for (const t of tokens) counts.set(t, (counts.get(t) ?? 0) + 1);
    const kept = [...counts].filter(([, c]) => c >= minCount).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    return new Vocab(['<pad>', '<unk>', ...kept.map(([w]) => w)]);
  }
  get size(): number {
    return this.items.length;
  }
  id(token: string): number {
    return this.index.get(token) ?? UNK_ID;
  }
}

export const wordKey = (w: string) => w.toLowerCase();
export const suffixKey = (w: string) => w.toLowerCase().slice(-3);
