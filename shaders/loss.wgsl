// The PDD objective (eq. 5) and its symmetrised form (Appendix D) per sample, the adjoints that
// seed the backward passes, and the batch statistics. With x = g(z) and, when needed, the
// inference pass z' = g^{-1}(-x):
//   plain     l = ln q(x) - ln pi(x)
//   symmetric l = ln [q(x) + q(-x)] / 2 - ln pi(x)
//   sym-reg   adds W [ln q(x) - ln q(-x)]   (KL(q(x) || q(-x)), Appendix E)
// Written as a ln q(x) + b ln q(-x) - ln pi(x) with a, b held fixed for the derivative (the
// logsumexp weights w1 = q(x) / (q(x) + q(-x)), w2 = 1 - w1 for the symmetric loss). With
// c = 1 / batch the backward passes start from
//   generation: adjoint of x = -c grad ln pi(x) (minus the inference pass's adjoint of -x),
//               d/d log|det dg/dz| = -c a
//   inference:  adjoint of z' = -c b z',   d/d log|det dg^{-1}/dx| = c b
// CPU twin: src/reference/backward.rs.

override WG: u32 = 64u; // a power of two

const HAS_NEG: u32 = 1u;
const SYMMETRIC: u32 = 2u;

struct LossParams {
    batch: u32,
    n_sites: u32,
    flags: u32,
    _pad: u32,
    c: f32,
    sym_reg: f32,
    _pad1: f32,
    _pad2: f32,
}

@group(0) @binding(0) var<uniform> lp: LossParams;
@group(0) @binding(1) var<storage, read> ln_q: array<f32>;
@group(0) @binding(2) var<storage, read> ln_q_neg: array<f32>;
@group(0) @binding(3) var<storage, read> ln_pi: array<f32>;
@group(0) @binding(4) var<storage, read_write> gamma_gen: array<f32>;
@group(0) @binding(5) var<storage, read_write> gamma_inf: array<f32>;
@group(0) @binding(6) var<storage, read_write> terms: array<f32>;
@group(0) @binding(7) var<storage, read> grad_ln_pi: array<f32>;
@group(0) @binding(8) var<storage, read> z_neg: array<f32>;
@group(0) @binding(9) var<storage, read_write> adj_gen: array<f32>;
@group(0) @binding(10) var<storage, read_write> adj_inf: array<f32>;
@group(0) @binding(11) var<storage, read> state: array<f32>;
@group(0) @binding(12) var<storage, read_write> neg_state: array<f32>;
@group(0) @binding(13) var<storage, read_write> stats: array<f32>;

// Per sample: the loss terms (plain, training objective) and the LD coefficients.
@compute @workgroup_size(WG)
fn coefficients(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let s = linear_id(gid, nwg);
    if s >= lp.batch {
        return;
    }
    let lq = ln_q[s];
    let plain = lq - ln_pi[s];
    var objective = plain;
    var a = 1.0;
    var b = 0.0;
    if (lp.flags & HAS_NEG) != 0u {
        let lqn = ln_q_neg[s];
        if (lp.flags & SYMMETRIC) != 0u {
            let mx = max(lq, lqn);
            objective = mx + log(exp(lq - mx) + exp(lqn - mx)) - 0.6931471805599453 - ln_pi[s];
            // w1 = 1 / (1 + q(-x)/q(x)); beyond e^88 the ratio would overflow f32 (which a
            // compiler may assume never happens), and w1 is 0 to f32 precision anyway.
            a = 1.0 / (1.0 + exp(min(lqn - lq, 88.0)));
            b = 1.0 - a;
        }
        objective += lp.sym_reg * (lq - lqn);
        a += lp.sym_reg;
        b -= lp.sym_reg;
    }
    terms[2u * s] = plain;
    terms[2u * s + 1u] = objective;
    gamma_gen[s] = -lp.c * a;
    gamma_inf[s] = lp.c * b;
}

// Per site: the adjoints that start the backward passes.
@compute @workgroup_size(WG)
fn seed(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= lp.batch * lp.n_sites {
        return;
    }
    adj_gen[i] = -lp.c * grad_ln_pi[i];
    if (lp.flags & HAS_NEG) != 0u {
        adj_inf[i] = -gamma_inf[i / lp.n_sites] * z_neg[i];
    }
}

// Per site: the inference pass ran on -x, so its adjoint enters x's with a minus sign.
@compute @workgroup_size(WG)
fn combine(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= lp.batch * lp.n_sites {
        return;
    }
    adj_gen[i] -= adj_inf[i];
}

// Per site: -x, the input of the inference pass.
@compute @workgroup_size(WG)
fn negate(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= lp.batch * lp.n_sites {
        return;
    }
    neg_state[i] = -state[i];
}

// Fixed-order sum over the batch of column `col` of `terms`, broadcast to every invocation.
fn batch_sum(lid: u32, col: u32, center: f32, square: bool) -> f32 {
    var acc = 0.0;
    for (var s = lid; s < lp.batch; s += WG) {
        let d = terms[2u * s + col] - center;
        acc += select(d, d * d, square);
    }
    return workgroup_sum(lid, vec4<f32>(acc, 0.0, 0.0, 0.0)).x;
}

// One workgroup: mean and standard error of both loss columns, two-pass for accuracy.
@compute @workgroup_size(WG)
fn batch_stats(@builtin(local_invocation_id) lid: vec3<u32>) {
    let n = f32(lp.batch);
    for (var col = 0u; col < 2u; col++) {
        let mean = batch_sum(lid.x, col, 0.0, false) / n;
        let ss = batch_sum(lid.x, col, mean, true);
        if lid.x == 0u {
            stats[2u * col] = mean;
            stats[2u * col + 1u] = sqrt(ss / max(n - 1.0, 1.0) / n);
        }
    }
}
