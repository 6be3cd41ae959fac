// binary16 in float64, written from the format's definition (not from kiln's bit-twiddling in src/tensor/half.ts):
// 1 sign bit, 5 exponent bits (bias 15), 10 fraction bits; subnormals below 2^-14 with spacing 2^-24.

/** The spacing of binary16 values around |x| (finite x). */
export function halfUlp(x: number): number {
  const a = Math.abs(x);
  if (a < 2 ** -14) return 2 ** -24;
  let e = Math.floor(Math.log2(a));
  while (2 ** e > a) e--;
  while (2 ** (e + 1) <= a) e++;
  return 2 ** (e - 10);
}

/** x rounded to the nearest binary16 value, ties to even; +-Infinity past the largest finite value (65504). */
export function nearestHalf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const a = Math.abs(x);
  if (a >= 65520) return Math.sign(x) * Infinity; // 65520 is halfway between 65504 and the next (infinite) step
  const ulp = halfUlp(a);
  const q = a / ulp;
  let r = Math.floor(q);
  const frac = q - r;
  if (frac > 0.5 || (frac === 0.5 && r % 2 === 1)) r++;
  const v = r * ulp;
  return x < 0 || Object.is(x, -0) ? -v : v;
}

/** The two binary16 values that bracket x (equal when x is one). */
export function halfNeighbours(x: number): [number, number] {
  const n = nearestHalf(x);
  if (n === x || !Number.isFinite(n)) return [n, n];
  const ulp = halfUlp(n < x ? x : n);
  return n < x ? [n, nearestHalf(n + ulp)] : [nearestHalf(n - halfUlp(n - ulp / 2)), n];
}
