// Peak memory bandwidth probe (roofline memory ceiling). Not a kiln kernel: the bench runs it through raw WebGPU.
// dst[i] = src[i] over `params.n` vec4<f32> elements, grid-stride; bytes moved = 2 * 16 * n.
// Dispatch: workgroup 256, up to 65535 workgroups in x and more in y.
struct Params { n: u32, stride: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  var i = gid.x;
  loop {
    if (i >= params.n) { break; }
    dst[i] = src[i];
    i += params.stride;
  }
}
