// ln pi(x) = -x^T A^{-1} x / 2 + sum ln cosh x_i and grad = -A^{-1} x + tanh x, one workgroup per
// sample, from `y` = A^{-1} x (target_transform's four passes). The sum over sites is a
// fixed-order tree reduction, so results are deterministic. CPU twin: src/reference/target.rs.

override WG: u32 = 64u; // a power of two

struct Params {
    batch: u32,
    l: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> log_pi: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad: array<f32>;

fn ln_cosh(v: f32) -> f32 {
    let a = abs(v);
    return a + log(1.0 + exp(-2.0 * a)) - 0.6931471805599453;
}

@compute @workgroup_size(WG)
fn log_prob(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let s = workgroup_index(wid, nwg);
    let n = p.l * p.l;
    var acc = 0.0;
    if s < p.batch {
        for (var i = lid.x; i < n; i += WG) {
            let xv = x[s * n + i];
            let yv = y[s * n + i];
            grad[s * n + i] = safe_tanh(xv) - yv;
            acc += ln_cosh(xv) - 0.5 * xv * yv;
        }
    }
    let total = workgroup_sum(lid.x, vec4<f32>(acc, 0.0, 0.0, 0.0)).x;
    if lid.x == 0u && s < p.batch {
        log_pi[s] = total;
    }
}
