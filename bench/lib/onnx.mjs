// Minimal hand-written ONNX protobuf writer (no protobuf dependency) for the ONNX Runtime peer graphs.
// Only the messages and fields the bench needs: ModelProto, OperatorSetIdProto, GraphProto, NodeProto,
// AttributeProto (int, ints), ValueInfoProto / TypeProto.Tensor / TensorShapeProto, TensorProto (float, raw_data).
// Field numbers from onnx/onnx.proto3. Opset 17, IR version 8.

const enc = new TextEncoder();

function varint(n) {
  // int64 as protobuf varint: negatives (axis -1) as 64-bit two's complement (10 bytes).
  const out = [];
  let v = BigInt.asUintN(64, BigInt(n));
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v) b |= 0x80;
    out.push(b);
  } while (v);
  return out;
}
const concat = (parts) => {
  const len = parts.reduce((s, p) => s + p.length, 0);
  const out = new Uint8Array(len);
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
};
const key = (field, wire) => varint((field << 3) | wire);
const fInt = (field, n) => Uint8Array.from([...key(field, 0), ...varint(n)]);
const fBytes = (field, bytes) => concat([Uint8Array.from([...key(field, 2), ...varint(bytes.length)]), bytes]);
const fStr = (field, s) => fBytes(field, enc.encode(s));
const fMsg = fBytes;

const FLOAT = 1; // TensorProto.DataType.FLOAT
const ATTR_INT = 2, ATTR_INTS = 7;

function attribute(name, value) {
  if (Array.isArray(value)) return concat([fStr(1, name), ...value.map((v) => fInt(8, v)), fInt(20, ATTR_INTS)]);
  return concat([fStr(1, name), fInt(3, value), fInt(20, ATTR_INT)]);
}

function node(op, inputs, outputs, attrs = {}, name = `${op}_${outputs[0]}`) {
  return concat([
    ...inputs.map((s) => fStr(1, s)), ...outputs.map((s) => fStr(2, s)), fStr(3, name), fStr(4, op),
    ...Object.entries(attrs).map(([k, v]) => fMsg(5, attribute(k, v))),
  ]);
}

function valueInfo(name, shape) {
  const dims = shape.map((d) => fMsg(1, typeof d === 'string' ? fStr(2, d) : fInt(1, d)));
  const tensorType = concat([fInt(1, FLOAT), fMsg(2, concat(dims))]);
  return concat([fStr(1, name), fMsg(2, fMsg(1, tensorType))]);
}

function tensor(name, dims, data) {
  const f = data instanceof Float32Array ? data : Float32Array.from(data);
  return concat([...dims.map((d) => fInt(1, d)), fInt(2, FLOAT), fStr(8, name), fBytes(9, new Uint8Array(f.buffer, f.byteOffset, f.byteLength))]);
}

/** graph: { name, nodes: [[op, inputs, outputs, attrs?]], inputs: [[name, shape]], outputs: [[name, shape]], initializers: [[name, dims, Float32Array]] } */
export function modelBytes(g) {
  const graph = concat([
    ...g.nodes.map((n) => fMsg(1, node(...n))), fStr(2, g.name),
    ...(g.initializers ?? []).map((t) => fMsg(5, tensor(...t))),
    ...g.inputs.map(([n, s]) => fMsg(11, valueInfo(n, s))), ...g.outputs.map(([n, s]) => fMsg(12, valueInfo(n, s))),
  ]);
  const opset = concat([fStr(1, ''), fInt(2, 17)]);
  return concat([fInt(1, 8), fStr(2, 'kiln-bench'), fMsg(7, graph), fMsg(8, opset)]);
}

/** softmax(Q K^T * scale [+ causal -inf upper triangle]) V, Q/K/V [B,H,N,D]. */
export function attentionModel([B, H, N, D], isCausal) {
  const nodes = [
    ['Transpose', ['K'], ['Kt'], { perm: [0, 1, 3, 2] }],
    ['MatMul', ['Q', 'Kt'], ['S']],
    ['Mul', ['S', 'scale'], ['Ss']],
  ];
  const initializers = [['scale', [], Float32Array.of(1 / Math.sqrt(D))]];
  let logits = 'Ss';
  if (isCausal) {
    const m = new Float32Array(N * N);
    for (let i = 0; i < N; i++) for (let j = i + 1; j < N; j++) m[i * N + j] = -Infinity;
    initializers.push(['mask', [N, N], m]);
    nodes.push(['Add', ['Ss', 'mask'], ['Sm']]);
    logits = 'Sm';
  }
  nodes.push(['Softmax', [logits], ['P'], { axis: -1 }], ['MatMul', ['P', 'V'], ['O']]);
  const sh = [B, H, N, D];
  return modelBytes({ name: 'attention', nodes, initializers, inputs: [['Q', sh], ['K', sh], ['V', sh]], outputs: [['O', sh]] });
}

export function matmulModel(n) {
  return modelBytes({ name: 'matmul', nodes: [['MatMul', ['A', 'B'], ['C']]], inputs: [['A', [n, n]], ['B', [n, n]]], outputs: [['C', [n, n]]] });
}

export function softmaxModel(shape) {
  return modelBytes({ name: 'softmax', nodes: [['Softmax', ['X'], ['Y'], { axis: -1 }]], inputs: [['X', shape]], outputs: [['Y', shape]] });
}

/** Conv (NCHW, 3x3 or any, padding `pad` on each side, stride 1) with the weight as an initializer, as a model ships it. */
export function convModel(xShape, wShape, outShape, w, pad) {
  return modelBytes({
    name: 'conv',
    nodes: [['Conv', ['X', 'W'], ['Y'], { kernel_shape: wShape.slice(2), pads: [pad, pad, pad, pad], strides: [1, 1], dilations: [1, 1], group: 1 }]],
    initializers: [['W', wShape, Float32Array.from(w)]],
    inputs: [['X', xShape]],
    outputs: [['Y', outShape]],
  });
}
