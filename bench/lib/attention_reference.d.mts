// Types of attention_reference.mjs (the float64 attention reference shared by tests and benchmarks).

/** A row-major float64 array and its shape (test/reference/core.ts's Ref is one). */
export interface Ref {
  data: Float64Array | ArrayLike<number>;
  shape: readonly number[];
}

export interface RefResult {
  data: Float64Array;
  shape: number[];
}

export interface SdpaOptions {
  /** Multiplies q.k; defaults to 1/sqrt(D). */
  scale?: number | undefined;
  /**
   * true / 'upperLeft': query i sees keys j <= i (PyTorch's is_causal, top-left aligned even when Nq != Nk);
   * 'lowerRight': j <= i + Nk - Nq (PyTorch's causal_lower_right, as incremental decoding).
   */
  isCausal?: boolean | 'upperLeft' | 'lowerRight' | undefined;
  /** Nonzero = may attend; broadcastable to [..., Hq, Nq, Nk]. */
  boolMask?: Ref | undefined;
  /** Added to the scaled scores; broadcastable to [..., Hq, Nq, Nk]. -Infinity masks a key. */
  floatMask?: Ref | undefined;
  /**
   * The multiplier applied to probability (b, h, i, j) after the softmax, already including 1/(1-p); default 1.
   * For a batch shape [..., H]: h is the index in the last batch dim (the head) and b the flat index over the
   * dims before it. For a batch shape [B] (3-D inputs) b is that index and h is 0.
   */
  dropoutMask?: ((b: number, h: number, i: number, j: number) => number) | undefined;
  /**
   * How an inadmissible entry of a row that has admissible keys meets the values in the products: 'skip' (default;
   * the fused kernels) leaves it out, 'zero' (the reference path, PyTorch's math backend) multiplies a zero weight.
   */
  maskedProducts?: 'skip' | 'zero' | undefined;
  /** flexAttention's mask mod: false makes (i, j) inadmissible. b: flat batch index, h: query head. */
  maskMod?: ((b: number, h: number, i: number, j: number) => boolean) | undefined;
  /** flexAttention's score mod, applied to the admissible scaled scores. */
  scoreMod?: ((s: number, b: number, h: number, i: number, j: number) => number) | undefined;
  /** d scoreMod / d s, for the backward. */
  scoreModGrad?: ((s: number, b: number, h: number, i: number, j: number) => number) | undefined;
  /** Called in the backward with the gradient dS of each admissible modded score and the score s before the mod. */
  onScoreGrad?: ((b: number, h: number, i: number, j: number, dS: number, s: number) => void) | undefined;
}

export interface SdpaResult {
  /** [...batch, Nq, Dv] */
  out: RefResult;
  /** Log-sum-exp of the scaled and masked scores per row, [...batch, Nq]; -Infinity for a row with no admissible key, NaN for a NaN row. */
  lse: RefResult;
  /** Softmax probabilities before dropout, [...batch, Nq, Nk]; zero in a row with no admissible key, NaN in a NaN row. */
  probs: RefResult;
}

export interface SdpaGrads {
  dq: RefResult;
  dk: RefResult;
  dv: RefResult;
  /** Gradient w.r.t. the float mask, summed down to the mask's own shape; null without a float mask. */
  dFloatMask: RefResult | null;
}

export function sdpa(q: Ref, k: Ref, v: Ref, opts?: SdpaOptions): SdpaResult;
export function sdpaBackward(q: Ref, k: Ref, v: Ref, dO: Ref, opts?: SdpaOptions): SdpaGrads;

/** q, k, v flat [BH, N, D]; rows `rows` (flat bh * N + i; all when omitted) of the output, [rows.length, D]. */
export function attentionRowsF64(
  q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, BH: number, N: number, D: number,
  opts?: { isCausal?: boolean | 'upperLeft' | 'lowerRight'; scale?: number; rows?: number[] },
): Float64Array;

export interface AdditiveAttentionParams {
  /** [A, Dq]: projects a query into the attention space (PyTorch Linear layout, out x in). */
  wq: Ref;
  /** [A, Dk]: projects a key into the attention space. */
  wk: Ref;
  /** [A]: scores a tanh-activated sum. */
  v: Ref;
  /** [A]: optional bias added inside the tanh. */
  bias?: Ref | undefined;
  /** Nonzero = may attend; broadcastable to [..., Nq, Nk]. A row with no allowed key gives zeros. */
  mask?: Ref | undefined;
}

export interface AdditiveAttentionResult {
  /** [...batch, Nq, Dv] */
  out: RefResult;
  /** Softmax weights [...batch, Nq, Nk]. */
  weights: RefResult;
}

export function additiveAttention(query: Ref, keys: Ref, values: Ref, params: AdditiveAttentionParams): AdditiveAttentionResult;

/** q, k, v flat [B, H, N, D]; rows `rows` (flat (b * H + h) * N + i) of flexAttention's output with these mods, [rows.length, D]. */
export function flexRowsF64(
  q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, B: number, H: number, N: number, D: number,
  opts?: { scoreMod?: SdpaOptions['scoreMod']; maskMod?: SdpaOptions['maskMod']; scale?: number; rows?: readonly number[] },
): Float64Array;
