// softmax, logSoftmax, layerNorm, embedding, concat: the ops with kernels of their own.
import { DTypeError, ShapeError, ValueError, fmtShape } from '../errors.js';
import { checkDType, f16Unsupported } from '../tensor/dtype.js';
import { type Tensor, empty } from '../tensor/tensor.js';
import { normDim, numel } from '../tensor/shape.js';
import { dispatch, grid1d } from '../gpu/kernels.js';
import { dummy, elementwise } from './kernel_args.js';
import { record } from './record.js';
import { dense, reshape } from './views.js';
import { mul, withTmp, unaryRaw, U } from './elementwise.js';
import { sum } from './reduce.js';

function softmaxKernel(entry: 'forward' | 'backward', log: boolean, x: Tensor, dy: Tensor | null, dim: number): Tensor {
  const out = empty(x.shape.slice(), 'f32');
  const R = x.shape[dim];
  const inner = numel(x.shape.slice(dim + 1));
  const rows = numel(x.shape) / Math.max(R, 1);
  if (x.size === 0) return out;
  dispatch('softmax.wgsl', entry, {
    constants: { LOG: log ? 1 : 0 },
    bindings: { x: x.buf('softmax').buffer, dy: dy ? dy.buf('softmax').buffer : dummy(), out: out.buf('softmax').buffer },
    params: { rows, R, inner, pad0: 0 },
    workgroups: grid1d(rows),
    label: log ? `logSoftmax.${entry}` : `softmax.${entry}`,
  });
  return out;
}

function softmaxImpl(fn: string, log: boolean, x: Tensor, dim: number): Tensor {
  checkDType(fn, 'input', x.dtype, ['f32']);
  if (dim === undefined) throw new ValueError(`${fn}: dim is required`);
  const d = normDim(fn, dim, x.rank, x.shape);
  // The kernel has no offset or strides: it needs x dense from offset 0 (a selected row is contiguous but offset).
  const xd = dense(x, fn);
  const xc = x.rank === 0 ? reshape(xd, [1]) : xd;
  const y0 = softmaxKernel('forward', log, xc, null, x.rank === 0 ? 0 : d);
  if (xc !== xd) xc.dispose();
  if (xd !== x) xd.dispose();
  const y = x.rank === 0 ? withTmp(y0, (t) => reshape(t, [])) : y0;
  return record(fn, y, [x], (g, [ys]) => {
    const gc = dense(g, fn);
    const yc = ys.rank === 0 ? reshape(ys, [1]) : ys;
    const gr = ys.rank === 0 ? reshape(gc, [1]) : gc;
    let dx = softmaxKernel('backward', log, yc, gr, ys.rank === 0 ? 0 : d);
    if (gr !== gc) gr.dispose();
    if (yc !== ys) yc.dispose();
    if (gc !== g) gc.dispose();
    if (ys.rank === 0) dx = withTmp(dx, (t) => reshape(t, []));
    return [dx];
  }, [y]);
}

export const softmax = (x: Tensor, dim: number): Tensor => softmaxImpl('softmax', false, x, dim);
export const logSoftmax = (x: Tensor, dim: number): Tensor => softmaxImpl('logSoftmax', true, x, dim);

export function layerNorm(x: Tensor, normalizedShape: number | number[], weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  checkDType('layerNorm', 'input', x.dtype, ['f32']);
  const ns = typeof normalizedShape === 'number' ? [normalizedShape] : normalizedShape;
  const tail = x.shape.slice(x.rank - ns.length);
  if (ns.length > x.rank || !ns.every((d, i) => d === tail[i])) {
    throw new ShapeError(`layerNorm: normalizedShape ${fmtShape(ns)} does not match the trailing dims of input ${fmtShape(x.shape)}`);
  }
  for (const [name, t] of [['weight', weight], ['bias', bias]] as const) {
    if (t && (t.shape.length !== ns.length || !t.shape.every((d, i) => d === ns[i]))) {
      throw new ShapeError(`layerNorm: ${name} ${fmtShape(t.shape)} must have shape ${fmtShape(ns)}`);
    }
    if (t && t.dtype === 'f16') throw f16Unsupported('layerNorm');
    if (t && t.dtype !== 'f32') throw new DTypeError(`layerNorm: ${name} must be f32, got ${t.dtype}`);
  }
  if (!(eps > 0)) throw new ValueError(`layerNorm: eps must be > 0, got ${eps}`);
  const C = numel(ns);
  const rows = C === 0 ? 0 : x.size / C;
  // The kernel reads x, weight and bias densely from offset 0.
  const xc = dense(x, 'layerNorm');
  const wd = weight ? dense(weight, 'layerNorm') : null;
  const bd = bias ? dense(bias, 'layerNorm') : null;
  const y = empty(x.shape.slice(), 'f32');
  const meanT = empty([rows], 'f32');
  const rstdT = empty([rows], 'f32');
  if (rows > 0) {
    dispatch('layernorm.wgsl', 'forward', {
      constants: { HAS_WEIGHT: weight ? 1 : 0, HAS_BIAS: bias ? 1 : 0 },
      bindings: {
        x: xc.buf('layerNorm').buffer,
        weight: wd ? wd.buf('layerNorm').buffer : dummy(),
        bias: bd ? bd.buf('layerNorm').buffer : dummy(),
        y: y.buf('layerNorm').buffer,
        mean: meanT.buf('layerNorm').buffer,
        rstd: rstdT.buf('layerNorm').buffer,
      },
      params: { rows, C, eps, pad0: 0 },
      workgroups: grid1d(rows),
      label: 'layerNorm',
    });
  }
  const save = [xc, meanT, rstdT, ...(wd ? [wd] : [])];
  const out = record('layerNorm', y, [x, weight, bias], (g, saved, needs) => {
    const [sx, sm, sr, sw] = saved;
    const gc = dense(g, 'layerNorm.backward');
    let dx: Tensor | null = null;
    if (needs[0]) {
      dx = empty(sx.shape.slice(), 'f32');
      dispatch('layernorm.wgsl', 'backward', {
        constants: { HAS_WEIGHT: sw ? 1 : 0, HAS_BIAS: 0 },
        bindings: {
          x: sx.buf('layerNorm').buffer,
          weight: sw ? sw.buf('layerNorm').buffer : dummy(),
          dy: gc.buf('layerNorm').buffer,
          saved_mean: sm.buf('layerNorm').buffer,
          saved_rstd: sr.buf('layerNorm').buffer,
          dx: dx.buf('layerNorm').buffer,
        },
        params: { rows, C, eps, pad0: 0 },
        workgroups: grid1d(rows),
        label: 'layerNorm.backward',
      });
    }
    let dw: Tensor | null = null;
    let db: Tensor | null = null;
    const lead = x.shape.slice(0, x.rank - ns.length).map((_, i) => i);
    if (needs[1]) {
      // xhat = (x - mean) * rstd, recomputed from the saved statistics.
      const xhat = layerNormXhat(sx, sm, sr, rows, C);
      const prod = mul(gc, xhat);
      xhat.dispose();
      dw = withTmp(prod, (p) => (lead.length ? sum(p, lead) : p.makeView(p.shape, p.strides, p.offset)));
    }
    if (needs[2]) db = lead.length ? sum(gc, lead) : gc.makeView(gc.shape, gc.strides, gc.offset);
    if (gc !== g) gc.dispose();
    return [dx, dw, db];
  }, save);
  if (xc !== x) xc.dispose();
  if (wd && wd !== weight) wd.dispose();
  if (bd && bd !== bias) bd.dispose();
  meanT.dispose();
  rstdT.dispose();
  return out;
}

function layerNormXhat(x: Tensor, mean: Tensor, rstd: Tensor, rows: number, C: number): Tensor {
  const x2 = reshape(x, [rows, C]);
  const m2 = reshape(mean, [rows, 1]);
  const r2 = reshape(rstd, [rows, 1]);
  const centered = empty([rows, C], 'f32');
  elementwise('binary', 'layerNorm.backward', centered, { a: x2, b: m2 }, 1 /* sub */);
  const xhat = empty([rows, C], 'f32');
  elementwise('binary', 'layerNorm.backward', xhat, { a: centered, b: r2 }, 2 /* mul */);
  centered.dispose();
  x2.dispose();
  m2.dispose();
  r2.dispose();
  const out = reshape(xhat, x.shape.slice());
  xhat.dispose();
  return out;
}

/** Rows of `weight` [num, dim] picked by i32 `indices` (any shape); out is indices.shape + [dim]. */
export function embedding(indices: Tensor, weight: Tensor): Tensor {
  if (indices.dtype !== 'i32') throw new DTypeError(`embedding: indices must be i32, got ${indices.dtype}`);
  if (weight.rank !== 2) throw new ShapeError(`embedding: weight must be [num, dim], got ${fmtShape(weight.shape)}`);
  checkDType('embedding', 'weight', weight.dtype, ['f32']);
  const [V, C] = weight.shape;
  // The gather kernel reads both densely from offset 0.
  const ic = dense(indices, 'embedding');
  const wc = dense(weight, 'embedding');
  const R = indices.size;
  const out = empty([...indices.shape, C], 'f32');
  if (R * C > 0) {
    dispatch('gather.wgsl', 'gather', {
      bindings: { table: wc.buf('embedding').buffer, idx: ic.buf('embedding').buffer, out: out.buf('embedding').buffer },
      params: { R, C, V, pad0: 0 },
      workgroups: grid1d(Math.ceil((R * C) / 256)),
      label: 'embedding',
    });
  }
  const res = record('embedding', out, [null, weight], (g, [si]) => {
    const gc = dense(g, 'embedding.backward');
    const dw = empty([V, C], 'f32');
    elementwise('fill', 'embedding.backward', dw, {}, 0, 0);
    if (R * C > 0) {
      dispatch('gather.wgsl', 'scatter_add', {
        bindings: { src: gc.buf('embedding').buffer, idx: si.buf('embedding').buffer, acc: dw.buf('embedding').buffer },
        params: { R, C, V, pad0: 0 },
        workgroups: grid1d(Math.ceil((R * C) / 256)),
        label: 'embedding.backward',
      });
    }
    if (gc !== g) gc.dispose();
    return [null, dw];
  }, [ic]);
  if (ic !== indices) ic.dispose();
  if (wc !== weight) wc.dispose();
  return res;
}

/** Joins tensors along an existing dim. */
export function concat(tensors: Tensor[], dim = 0): Tensor {
  if (!Array.isArray(tensors) || tensors.length === 0) throw new ValueError('concat: needs a non-empty array of tensors');
  const first = tensors[0];
  const d = normDim('concat', dim, first.rank, first.shape);
  for (const t of tensors) {
    t.buf('concat');
    if (t.dtype !== first.dtype) throw new DTypeError(`concat: dtypes differ (${first.dtype} vs ${t.dtype})`);
    if (t.rank !== first.rank || t.shape.some((s, i) => i !== d && s !== first.shape[i])) {
      throw new ShapeError(`concat: shapes ${tensors.map((x) => fmtShape(x.shape)).join(', ')} differ outside dim ${d}`);
    }
  }
  const shape = first.shape.slice();
  shape[d] = tensors.reduce((a, t) => a + t.shape[d], 0);
  const out = empty(shape, first.dtype);
  let start = 0;
  const starts: number[] = [];
  for (const t of tensors) {
    starts.push(start);
    const target = out.makeView(t.shape.slice(), out.strides.slice(), start * out.strides[d]);
    elementwise('unary', 'concat', target, { a: t }, U.copy);
    target.dispose();
    start += t.shape[d];
  }
  const sizes = tensors.map((t) => t.shape[d]);
  return record('concat', out, tensors, (g) =>
    sizes.map((size, i) => {
      const shp = g.shape.slice();
      shp[d] = size;
      const v = g.makeView(shp, g.strides.slice(), g.offset + starts[i] * g.strides[d]);
      const c = unaryRaw('concat.backward', v, U.copy);
      v.dispose();
      return c;
    }),
  );
}

export function stack(tensors: Tensor[], dim = 0): Tensor {
  if (!Array.isArray(tensors) || tensors.length === 0) throw new ValueError('stack: needs a non-empty array of tensors');
  const first = tensors[0];
  const d = normDim('stack', dim, first.rank + 1, first.shape);
  // Validate here so the message names the caller's shapes, not the unsqueezed ones.
  for (const t of tensors) {
    t.buf('stack');
    if (t.rank !== first.rank || t.shape.some((s, i) => s !== first.shape[i])) {
      throw new ShapeError(`stack: all tensors need the same shape, got ${tensors.map((x) => fmtShape(x.shape)).join(', ')}`);
    }
  }
  const expanded = tensors.map((t) => {
    const shp = t.shape.slice();
    shp.splice(d, 0, 1);
    return reshape(t, shp);
  });
  try {
    return concat(expanded, d);
  } finally {
    for (const e of expanded) e.dispose();
  }
}
