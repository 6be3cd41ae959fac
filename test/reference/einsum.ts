// A float64 einsum by brute force: every assignment of the letters, products summed into the output (no ellipsis:
// tests spell the dims out). Size-1 dims broadcast as PyTorch's.
import { type Ref, numel, stridesOf, unravel } from './core';

export function einsum(equation: string, ...xs: Ref[]): Ref {
  const [lhs, rhsIn] = equation.replace(/\s+/g, '').split('->');
  const terms = lhs.split(',');
  const size = new Map<string, number>();
  terms.forEach((t, i) => [...t].forEach((l, d) => size.set(l, Math.max(size.get(l) ?? 1, xs[i].shape[d]))));
  const counts = new Map<string, number>();
  for (const t of terms) for (const l of t) counts.set(l, (counts.get(l) ?? 0) + 1);
  const rhs = rhsIn ?? [...counts.keys()].filter((l) => counts.get(l) === 1).sort().join('');
  const letters = [...size.keys()];
  const outShape = [...rhs].map((l) => size.get(l)!);
  const out = new Float64Array(numel(outShape));
  const outStrides = stridesOf(outShape);
  const strides = xs.map((x) => stridesOf(x.shape));
  const all = letters.map((l) => size.get(l)!);
  for (let f = 0; f < numel(all); f++) {
    const v = unravel(f, all);
    const val = (l: string) => v[letters.indexOf(l)];
    let p = 1;
    terms.forEach((t, i) => {
      const off = [...t].reduce((a, l, d) => a + (xs[i].shape[d] === 1 ? 0 : val(l)) * strides[i][d], 0);
      p *= xs[i].data[off];
    });
    out[[...rhs].reduce((a, l, d) => a + val(l) * outStrides[d], 0)] += p;
  }
  return { data: out, shape: outShape };
}
