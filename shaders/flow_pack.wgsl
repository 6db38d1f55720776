// Copies the flat parameters into the flow kernels' packed weights: coupling step s (`step`
// floats from s * step in the parameter layout) to s * stride, so that every step starts at an
// offset the adapter can bind on its own (lib/weights.wgsl). The padding stays zero. A copy, so
// no CPU twin: the flow tests compare the kernels that read it with src/reference/.

override WG: u32 = 64u;

struct Pack {
    n: u32,
    step: u32,
    stride: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> pk: Pack;
@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read_write> packed: array<f32>;

@compute @workgroup_size(WG)
fn pack(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let p = linear_id(gid, nwg);
    if p >= pk.n {
        return;
    }
    packed[p / pk.step * pk.stride + p % pk.step] = params[p];
}
