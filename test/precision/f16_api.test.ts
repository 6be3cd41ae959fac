// Every op of the public API with f16 inputs: the walk covers each function kiln exports (top level and F), each nn
// layer and each Tensor method, so an op added without an f16 entry here fails the first test. Each entry either runs
// on f16 inputs (results in f16, or the op's own dtype: i32 indices, bool tests) and leaks nothing, or is refused with
// a DTypeError that says why, before any GPU work. Values are checked elsewhere (test/precision/*: float64 on the
// rounded inputs); this file is the inventory.
import { describe, expect, it } from 'vitest';
import * as K from '../../src/index.node';
import { expectNoLeak, expectThrows } from '../helpers';

type Out = 'f16' | 'f32' | 'i32' | 'bool' | 'none';
/** Runs the op on f16 inputs; `out` is the dtype of the tensor results. */
interface Runs { run: () => unknown; out: Out }
/** Refused: on the tensors `inputs` makes, a DTypeError whose message holds each of `why`, before any GPU work. */
interface Refused { inputs: () => K.Tensor[]; refuse: (...xs: K.Tensor[]) => unknown; why: string[] }
type Case = Runs | Refused;

const h = (shape: number[], seed = 1) => K.randn(shape, { seed, dtype: 'f16' });
const hp = (shape: number[], seed = 1) => K.rand(shape, { seed, dtype: 'f16' }); // positive
const i32 = (v: number[], shape?: number[]) => K.tensor(v, { dtype: 'i32', shape });
const mask = () => K.tensor([true, false, true, false], { dtype: 'bool' });
const ac = <T>(f: () => T): T => K.autocast(f, { dtype: 'f16' });
const qkv = () => [h([1, 2, 5, 4], 1), h([1, 2, 5, 4], 2), h([1, 2, 5, 4], 3)] as const;

const refused = (inputs: () => K.Tensor[], refuse: (...xs: K.Tensor[]) => unknown, why: string[]): Refused => ({ inputs, refuse, why });
const unary = (f: (x: K.Tensor) => unknown): Runs => ({ run: () => f(h([3, 5])), out: 'f16' });
const binary = (f: (x: K.Tensor, y: K.Tensor) => unknown): Runs => ({ run: () => f(h([3, 5]), h([5], 2)), out: 'f16' });
const compare = (f: (x: K.Tensor, y: K.Tensor) => unknown): Runs => ({ run: () => f(h([3, 5]), h([5], 2)), out: 'bool' });

/** Functions exported at the top level and in F. */
const FUNCTIONS: Record<string, Case> = {
  add: binary(K.add), sub: binary(K.sub), mul: binary(K.mul), div: binary(K.div), pow: binary(K.pow), maximum: binary(K.maximum), minimum: binary(K.minimum),
  neg: unary(K.neg), exp: unary(K.exp), log: unary((x) => K.log(K.abs(x))), sqrt: unary((x) => K.sqrt(K.abs(x))), rsqrt: unary((x) => K.rsqrt(K.abs(x))),
  abs: unary(K.abs), relu: unary(K.relu), gelu: unary(K.gelu), tanh: unary(K.tanh), sigmoid: unary(K.sigmoid), sin: unary(K.sin), cos: unary(K.cos),
  softplus: unary(K.softplus), log1p: unary((x) => K.log1p(K.abs(x))), clamp: unary((x) => K.clamp(x, -0.5, 0.5)), silu: unary(K.silu), erf: unary(K.erf),
  clone: unary(K.clone),
  eq: compare(K.eq), ne: compare(K.ne), lt: compare(K.lt), le: compare(K.le), gt: compare(K.gt), ge: compare(K.ge),
  logicalAnd: refused(() => [h([2])], (x) => K.logicalAnd(x, x), ['logicalAnd', 'f16', 'expected bool']),
  logicalOr: refused(() => [h([2])], (x) => K.logicalOr(x, x), ['logicalOr', 'f16', 'expected bool']),
  logicalNot: refused(() => [h([2])], (x) => K.logicalNot(x), ['logicalNot', 'f16', 'expected bool']),
  where: { run: () => K.where(mask(), h([3, 4]), h([4], 2)), out: 'f16' },
  sum: unary((x) => K.sum(x, 1)), mean: unary((x) => K.mean(x)), amax: unary((x) => K.amax(x, [0, 1])), amin: unary((x) => K.amin(x, 0)),
  max: unary((x) => K.max(x)), min: unary((x) => (K.min(x, 1) as K.MaxResult).values),
  argmax: { run: () => K.argmax(h([3, 5]), 1), out: 'i32' }, argmin: { run: () => K.argmin(h([3, 5])), out: 'i32' },
  var: unary((x) => K.var(x, 1)), std: unary((x) => K.std(x)), logsumexp: unary((x) => K.logsumexp(x, 1)),
  all: { run: () => K.all(h([3, 5])), out: 'bool' }, any: { run: () => K.any(h([3, 5]), 0), out: 'bool' },
  matmul: binary((x) => K.matmul(x, h([5, 2], 2))), linear: binary((x) => K.linear(x, h([4, 5], 2), h([4], 3))),
  bmm: { run: () => K.bmm(h([2, 3, 4]), h([2, 4, 5], 2)), out: 'f16' },
  split: unary((x) => K.split(x, 2, 1)), chunk: unary((x) => K.chunk(x, 2, 0)), flip: unary((x) => K.flip(x, [0, 1])), repeat: unary((x) => K.repeat(x, 2, 1, 2)),
  triu: unary((x) => K.triu(x, 1)), tril: unary(K.tril), maskedFill: { run: () => K.maskedFill(h([3, 4]), mask(), 2), out: 'f16' },
  gather: { run: () => K.gather(h([3, 4]), 1, i32([0, 1, 2, 3, 0, 0], [3, 2])), out: 'f16' },
  indexSelect: { run: () => K.indexSelect(h([3, 4]), 0, i32([2, 0])), out: 'f16' },
  scatterAdd: { run: () => K.scatterAdd(h([3, 4]), 1, i32([0, 1, 2, 3, 0, 0], [3, 2]), h([3, 2], 2)), out: 'f16' },
  cumsum: unary((x) => K.cumsum(x, 1)),
  einsum: { run: () => K.einsum('ij,jk->ik', h([3, 4]), h([4, 2], 2)), out: 'f16' },
  sort: unary((x) => K.sort(x, 1).values), argsort: { run: () => K.argsort(h([3, 5]), 1), out: 'i32' }, topk: unary((x) => K.topk(x, 2).values),
  multinomial: { run: () => K.multinomial(hp([2, 6]), 3), out: 'i32' },
  reshape: unary((x) => K.reshape(x, [5, 3])), flatten: unary(K.flatten), permute: unary((x) => K.permute(x, [1, 0])), transpose: unary((x) => K.transpose(x, 0, 1)),
  unsqueeze: unary((x) => K.unsqueeze(x, 1)), squeeze: unary((x) => K.squeeze(K.unsqueeze(x, 0))), expand: unary((x) => K.expand(K.unsqueeze(x, 0), [2, 3, 5])),
  slice: unary((x) => K.slice(x, 1, 1, 4)), select: unary((x) => K.select(x, 0, 2)), contiguous: unary((x) => K.contiguous(K.transpose(x, 0, 1))), detach: unary(K.detach),
  softmax: unary((x) => K.softmax(x, 1)), logSoftmax: unary((x) => K.logSoftmax(x, 0)), layerNorm: unary((x) => K.layerNorm(x, [5])),
  embedding: { run: () => K.embedding(i32([3, 0, 1]), h([4, 6])), out: 'f16' },
  concat: binary((x) => K.concat([x, x], 1)), stack: binary((x) => K.stack([x, x])),
  dropout: unary((x) => K.F.dropout(x, 0.3, { seed: 1 })),
  scaledDotProductAttention: { run: () => K.scaledDotProductAttention(...qkv(), { isCausal: true }), out: 'f16' },
  attentionWeights: { run: () => K.attentionWeights(qkv()[0], qkv()[1]), out: 'f16' },
  flexAttention: { run: () => K.flexAttention(...qkv(), { scoreMod: (s, _b, _h, q, k) => s.sub(q.sub(k).abs()) }), out: 'f16' },
  crossEntropy: { run: () => K.F.crossEntropy(h([3, 5]), i32([1, 4, 0])), out: 'f16' },
  mseLoss: binary((x, y) => K.F.mseLoss(x, K.expand(y, [3, 5]))),
  binaryCrossEntropyWithLogits: binary((x) => K.F.binaryCrossEntropyWithLogits(x, hp([3, 5], 3))),
  conv2d: { run: () => K.F.conv2d(h([1, 2, 5, 5]), h([3, 2, 3, 3], 2), h([3], 3), { padding: 1 }), out: 'f16' },
  conv1d: { run: () => K.F.conv1d(h([1, 2, 5]), h([3, 2, 3], 2)), out: 'f16' },
  maxPool2d: { run: () => K.F.maxPool2d(h([1, 2, 4, 4]), 2), out: 'f16' },
  avgPool2d: { run: () => K.F.avgPool2d(h([1, 2, 4, 4]), 2), out: 'f16' },
  adaptiveAvgPool2d: { run: () => K.F.adaptiveAvgPool2d(h([1, 2, 4, 4]), 1), out: 'f16' },
  // f16 input, f32 running statistics, weight and bias (as PyTorch's half batch norm): f16 out, statistics in f32.
  batchNorm: { run: () => K.F.batchNorm(h([2, 3, 4]), K.zeros([3]), K.ones([3]), { training: true, weight: K.ones([3]), bias: K.zeros([3]) }), out: 'f16' },
  // Creation takes dtype: 'f16'.
  zeros: { run: () => K.zeros([3], { dtype: 'f16' }), out: 'f16' }, ones: { run: () => K.ones([3], { dtype: 'f16' }), out: 'f16' },
  full: { run: () => K.full([3], 2.5, { dtype: 'f16' }), out: 'f16' }, rand: { run: () => hp([3]), out: 'f16' }, randn: { run: () => h([3]), out: 'f16' },
  zerosLike: unary(K.zerosLike), onesLike: unary(K.onesLike), fullLike: unary((x) => K.fullLike(x, 3)),
  arange: { run: () => K.arange(0, 5, 1, { dtype: 'f16' }), out: 'f16' }, tensor: { run: () => K.tensor([1, 2], { dtype: 'f16' }), out: 'f16' },
  // Autograd and mixed precision.
  backward: { run: () => { const x = K.tensor([1, 2], { dtype: 'f16', requiresGrad: true }); K.backward(K.sum(K.mul(x, x))); return x.grad; }, out: 'f16' },
  autocast: { run: () => ac(() => K.matmul(K.randn([2, 3]), K.randn([3, 2]))), out: 'f16' },
  compile: { run: () => compiled((x) => K.sum(K.mul(K.exp(x), x), 1), h([3, 5])), out: 'f16' },
  gradcheck: { inputs: () => [K.tensor([1, 2], { dtype: 'f16', requiresGrad: true })], refuse: (x) => K.gradcheck((t) => K.sum(t), [x]), why: ['gradcheck', 'input 0 is f16', 'x.float()'] },
  defineOp: refused(() => [h([3])], (x) => f16CustomOp(x), ['f16', '32-bit words', 'two halves per word', 'x.float()']),
};

/** f traced by compile and run once on x; the result copied out before the step (and what its trace holds) is disposed. */
function compiled(f: (x: K.Tensor) => K.Tensor, x: K.Tensor): K.Tensor {
  const step = K.compile(f);
  const y = step(x).clone();
  step.dispose();
  return y;
}

/** A user op (defineOp) run on an f16 input: user kernels read 32-bit words, so f16 is refused with that reason. */
function f16CustomOp(x: K.Tensor): unknown {
  const op = K.defineOp({
    name: 'twice',
    kernel: `@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>) { if (g.x < arrayLength(&y)) { y[g.x] = 2.0 * x[g.x]; } }`,
    forward: (ctx, t) => ctx.launch({ inputs: { x: t }, outputs: { y: { shape: t.shape } }, workgroups: 1 }).y,
  });
  return op(x);
}

/** Exports that are not ops on tensors (setup, memory, errors, data and IO helpers, metrics on i32 labels). */
const NOT_OPS = new Set([
  'init', 'deviceInfo', 'memory', 'resetPeak', 'emptyCache', 'setPoolLimit', 'flush', 'sync', 'KilnError', 'ShapeError', 'DTypeError', 'DeviceError',
  'DisposedError', 'ValueError', 'IndexError', 'CheckpointError', 'Tensor', 'tidy', 'keep', 'manualSeed', 'getRngState', 'setRngState',
  'enableLeakDetector', 'setMatmulPrecision', 'getMatmulPrecision', 'noGrad', 'enableGrad', 'isGradEnabled', 'save', 'load', 'readHeader',
  'batches', 'permutation', 'TensorDataset', 'fit', 'saveCheckpoint', 'loadCheckpoint', 'accuracy', 'confusionMatrix', 'precisionRecallF1',
  'classificationReport', 'KVCache', 'createBlockMask', 'BlockMask', 'Expr', 'exprWhere',
]);

/**
 * nn layers: f32 parameters (kiln keeps f32 master weights), f16 inputs; layers with weights run under autocast. Each
 * entry makes the layer (`layer`, disposed after) and calls it.
 */
type LayerCase = { layer: () => K.nn.Module; call: (m: K.nn.Module) => unknown; out: Out } | { layer: () => K.nn.Module; input: () => K.Tensor; why: string[] };
const fwd = (m: K.nn.Module, ...args: unknown[]) => (m.forward as (...a: unknown[]) => unknown)(...args);
const LAYERS: Record<string, LayerCase> = {
  Linear: { layer: () => new K.nn.Linear(5, 4), call: (m) => ac(() => fwd(m, h([3, 5]))), out: 'f16' },
  Embedding: { layer: () => new K.nn.Embedding(6, 4), call: (m) => ac(() => fwd(m, i32([1, 5]))), out: 'f32' },
  LayerNorm: { layer: () => new K.nn.LayerNorm(5), call: (m) => fwd(m, h([3, 5])), out: 'f16' },
  RMSNorm: { layer: () => new K.nn.RMSNorm(5), call: (m) => fwd(m, h([3, 5])), out: 'f16' },
  Dropout: { layer: () => new K.nn.Dropout(0.2), call: (m) => fwd(m, h([3, 5])), out: 'f16' },
  ReLU: { layer: () => new K.nn.ReLU(), call: (m) => fwd(m, h([3])), out: 'f16' },
  GELU: { layer: () => new K.nn.GELU(), call: (m) => fwd(m, h([3])), out: 'f16' },
  SiLU: { layer: () => new K.nn.SiLU(), call: (m) => fwd(m, h([3])), out: 'f16' },
  Tanh: { layer: () => new K.nn.Tanh(), call: (m) => fwd(m, h([3])), out: 'f16' },
  Sigmoid: { layer: () => new K.nn.Sigmoid(), call: (m) => fwd(m, h([3])), out: 'f16' },
  Identity: { layer: () => new K.nn.Identity(), call: (m) => fwd(m, h([3])), out: 'f16' },
  Flatten: { layer: () => new K.nn.Flatten(), call: (m) => fwd(m, h([2, 3, 2])), out: 'f16' },
  Sequential: { layer: () => new K.nn.Sequential(new K.nn.Linear(5, 4), new K.nn.ReLU()), call: (m) => ac(() => fwd(m, h([3, 5]))), out: 'f16' },
  MultiheadAttention: { layer: () => new K.nn.MultiheadAttention(8, 2), call: (m) => ac(() => fwd(m, h([2, 5, 8]))), out: 'f16' },
  TransformerEncoderLayer: { layer: () => new K.nn.TransformerEncoderLayer(8, 2, { dimFeedforward: 16, dropout: 0 }), call: (m) => ac(() => fwd(m, h([2, 5, 8]))), out: 'f32' },
  TransformerDecoderLayer: { layer: () => new K.nn.TransformerDecoderLayer(8, 2, { dimFeedforward: 16, dropout: 0 }), call: (m) => ac(() => fwd(m, h([2, 5, 8]), h([2, 3, 8], 2))), out: 'f32' },
  AttentionPooling: { layer: () => new K.nn.AttentionPooling(8), call: (m) => ac(() => fwd(m, h([2, 5, 8]))), out: 'f16' },
  AdditiveAttention: { layer: () => new K.nn.AdditiveAttention(8, 8, 6), call: (m) => ac(() => fwd(m, h([2, 3, 8]), h([2, 5, 8], 2))), out: 'f16' },
  // Layers with f32 weights meeting an f16 input: one dtype for input and weight, as PyTorch's.
  Conv2d: { layer: () => new K.nn.Conv2d(2, 3, 3), input: () => h([1, 2, 5, 5]), why: ['conv2d', 'input is f16 but weight is f32'] },
  Conv1d: { layer: () => new K.nn.Conv1d(2, 3, 3), input: () => h([1, 2, 5]), why: ['conv1d', 'input is f16 but weight is f32'] },
  MaxPool2d: { layer: () => new K.nn.MaxPool2d(2), call: (m) => fwd(m, h([1, 2, 4, 4])), out: 'f16' },
  AvgPool2d: { layer: () => new K.nn.AvgPool2d(2), call: (m) => fwd(m, h([1, 2, 4, 4])), out: 'f16' },
  AdaptiveAvgPool2d: { layer: () => new K.nn.AdaptiveAvgPool2d(1), call: (m) => fwd(m, h([1, 2, 4, 4])), out: 'f16' },
  // f32 weight, bias and running statistics meeting an f16 input: accepted, as PyTorch's batch norm (f32 arithmetic).
  BatchNorm2d: { layer: () => new K.nn.BatchNorm2d(2), call: (m) => fwd(m, h([2, 2, 3, 3])), out: 'f16' },
  BatchNorm1d: { layer: () => new K.nn.BatchNorm1d(2), call: (m) => fwd(m, h([3, 2])), out: 'f16' },
};
const NOT_LAYERS = new Set(['Module', 'StateDictError', 'ModuleList', 'ModuleDict', 'normalParam']);

/** Tensor methods whose function is walked above under another name, or that are not ops. */
const METHOD_ALIASES: Record<string, string> = { view: 'reshape', half: 'tensor', float: 'tensor', to: 'tensor', at: 'flexAttention', constructor: 'tensor' };

function results(r: unknown): K.Tensor[] {
  if (r instanceof K.Tensor) return [r];
  if (Array.isArray(r)) return r.flatMap(results);
  if (r && typeof r === 'object') return Object.values(r).flatMap(results);
  return [];
}

async function check(name: string, c: Case): Promise<void> {
  if ('refuse' in c) {
    const xs = c.inputs();
    if (name === 'gradcheck') {
      // asynchronous: the refusal is a rejected promise
      await expect(c.refuse(...xs) as Promise<unknown>).rejects.toThrow(K.DTypeError);
      await expect(c.refuse(...xs) as Promise<unknown>).rejects.toThrow(c.why[1]);
    } else {
      expectThrows(() => c.refuse(...xs), K.DTypeError, ...c.why);
    }
    for (const x of xs) x.dispose();
    return;
  }
  await expectNoLeak(() => {
    const outs = K.tidy(() => {
      let r: unknown;
      try {
        r = c.run();
      } catch (e) {
        throw new Error(`${name} refused f16: ${(e as Error).message}`);
      }
      return results(r).map((t) => t.clone());
    });
    expect(outs.length, `${name} returns a tensor`).toBeGreaterThan(0);
    for (const t of outs) expect(t.dtype, `${name} result dtype`).toBe(c.out);
    for (const t of outs) t.dispose();
  });
}

describe('every op of the API with f16 inputs', () => {
  it('the walk covers every exported function, F function, nn layer and Tensor method', () => {
    const missing: string[] = [];
    for (const [k, v] of Object.entries(K)) if (typeof v === 'function' && !(k in FUNCTIONS) && !NOT_OPS.has(k)) missing.push(k);
    for (const [k, v] of Object.entries(K.F)) if (typeof v === 'function' && !(k in FUNCTIONS)) missing.push(`F.${k}`);
    for (const k of Object.keys(K.nn)) if (!(k in LAYERS) && !NOT_LAYERS.has(k)) missing.push(`nn.${k}`);
    for (const k of Object.getOwnPropertyNames(K.Tensor.prototype)) if (!(k in FUNCTIONS) && !(k in METHOD_ALIASES)) missing.push(`Tensor.${k}`);
    expect(missing).toEqual([]);
  });

  it.each(Object.keys(FUNCTIONS))('%s', async (name) => {
    await check(name, FUNCTIONS[name]);
  });

  it.each(Object.keys(LAYERS))('nn.%s', async (name) => {
    const c = LAYERS[name];
    await expectNoLeak(async () => {
      const m = c.layer();
      if ('why' in c) {
        await check(`nn.${name}`, { inputs: () => [c.input()], refuse: (x) => fwd(m, x), why: c.why });
      } else {
        await check(`nn.${name}`, { run: () => c.call(m), out: c.out });
      }
      m.dispose();
    });
  });

  it('optimizers refuse an f16 parameter saying why (f32 master weights) and what to do, before any GPU work', () => {
    const p = K.tensor([1, 2], { dtype: 'f16', requiresGrad: true });
    const before = K.memory().buffers;
    for (const make of [(ps: K.Tensor[]) => new K.optim.SGD(ps, { lr: 0.1 }), (ps: K.Tensor[]) => new K.optim.Adam(ps, { lr: 0.1 }), (ps: K.Tensor[]) => new K.optim.AdamW(ps, { lr: 0.1 })]) {
      expectThrows(() => make([p]), K.DTypeError, 'parameter 0', 'has dtype f16', 'f32 master weights', 'autocast', 'p.float().detach()');
    }
    expect(K.memory().buffers).toBe(before);
    p.dispose();
  });

  it('Tensor methods run as their functions (a sample, each kind)', async () => {
    await expectNoLeak(() => {
      K.tidy(() => {
        const x = h([3, 4]);
        expect(x.gather(1, i32([0, 3, 1], [3, 1])).dtype).toBe('f16');
        expect(x.cumsum(0).dtype).toBe('f16');
        expect(x.flip(1).dtype).toBe('f16');
        expect(x.sort().values.dtype).toBe('f16');
        expect(x.topk(1).values.dtype).toBe('f16');
        expect(x.triu().dtype).toBe('f16');
        expect(x.view([12]).dtype).toBe('f16');
        expect(x.float().dtype).toBe('f32');
        expect(x.float().half().dtype).toBe('f16');
        expect(x.abs().multinomial(2).dtype).toBe('i32');
      });
    });
  });
});
