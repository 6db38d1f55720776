// Adam (Kingma & Ba) with decoupled weight decay and optional global gradient-norm clipping, over
// the flat parameter buffer, and the fixed-order gradient norm it needs. A non-finite gradient
// norm leaves the parameters and moments untouched, so the last good state survives a NaN.
// CPU twin: src/reference/adam.rs.

override WG: u32 = 64u; // a power of two

struct AdamParams {
    n_params: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    clip: f32,
    // 1 - beta^t, computed on the host in f64.
    bias1: f32,
    bias2: f32,
}

const NORM_SLOT: u32 = 4u; // stats[4] = |grad|^2

@group(0) @binding(0) var<uniform> ap: AdamParams;
@group(0) @binding(1) var<storage, read_write> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> params: array<f32>;
@group(0) @binding(3) var<storage, read_write> m1: array<f32>;
@group(0) @binding(4) var<storage, read_write> m2: array<f32>;
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;

@compute @workgroup_size(WG)
fn zero_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i < ap.n_params {
        grad[i] = 0.0;
    }
}

// One workgroup.
@compute @workgroup_size(WG)
fn grad_norm(@builtin(local_invocation_id) lid: vec3<u32>) {
    var acc = 0.0;
    for (var i = lid.x; i < ap.n_params; i += WG) {
        acc += grad[i] * grad[i];
    }
    let total = workgroup_sum(lid.x, vec4<f32>(acc, 0.0, 0.0, 0.0)).x;
    if lid.x == 0u {
        stats[NORM_SLOT] = total;
    }
}

@compute @workgroup_size(WG)
fn adam(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    let norm2 = stats[NORM_SLOT];
    if i >= ap.n_params || !is_finite(norm2) {
        return;
    }
    var g = grad[i];
    if ap.clip > 0.0 {
        g *= min(1.0, ap.clip / (sqrt(norm2) + 1e-6));
    }
    let m = ap.beta1 * m1[i] + (1.0 - ap.beta1) * g;
    let v = ap.beta2 * m2[i] + (1.0 - ap.beta2) * g * g;
    m1[i] = m;
    m2[i] = v;
    let p = params[i];
    params[i] = p - ap.lr * ((m / ap.bias1) / (sqrt(v / ap.bias2) + ap.eps) + ap.weight_decay * p);
}
