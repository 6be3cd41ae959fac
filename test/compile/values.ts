// Inputs for the compiler's tests: reproducible values in [-3, 3), with NaN, +-Infinity and 0 at fixed places.
export function values(n: number, seed: number, special = true): Float32Array {
  let s = seed >>> 0 || 1;
  const out = Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 31 - 1) * 3;
  });
  if (special && n > 7) {
    out[1] = NaN;
    out[3] = Infinity;
    out[6] = -Infinity;
    out[7] = 0;
  }
  return out;
}
