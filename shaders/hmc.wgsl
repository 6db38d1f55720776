// Hybrid Monte Carlo (Algorithm 2): the leapfrog updates, the Hamiltonian of every chain, and
// the Metropolis decision, for `chains` chains of `n_sites` variables each (one chain per batch
// row). The potential U is -ln pi(x) in physical space and -ln pi(g(z)) - ln|det dg/dz| in
// latent space; its gradient comes from the target stage (physical) or the flow's backward
// stage seeded with -grad ln pi (latent). CPU twin: src/reference/hmc.rs.

override WG: u32 = 64u; // a power of two

struct HmcParams {
    chains: u32,
    n_sites: u32,
    // 1 in latent space: U includes -ln|det dg/dz|.
    latent: u32,
    // hamiltonian: 0 for the start of a trajectory, 1 for its end.
    slot: u32,
    // kick: p += coef * force_input; drift: q += coef * p.
    coef: f32,
    _pad0: f32,
    _pad1: f32,
    _pad2: f32,
}

@group(0) @binding(0) var<uniform> hp: HmcParams;
@group(0) @binding(1) var<storage, read_write> q: array<f32>;
@group(0) @binding(2) var<storage, read_write> p: array<f32>;
// What the kick reads: dU/dz (latent) or grad ln pi = -dU/dx (physical); the sign is in coef.
@group(0) @binding(3) var<storage, read> force_input: array<f32>;
@group(0) @binding(4) var<storage, read_write> chain: array<f32>;
@group(0) @binding(5) var<storage, read> log_pi: array<f32>;
@group(0) @binding(6) var<storage, read> log_det: array<f32>;
// [2, chains]: H at the start and at the end of the trajectory.
@group(0) @binding(7) var<storage, read_write> ham: array<f32>;
@group(0) @binding(8) var<storage, read> bits: array<u32>;
@group(0) @binding(9) var<storage, read_write> accepted: array<u32>;
@group(0) @binding(10) var<storage, read_write> work: array<f32>;
@group(0) @binding(11) var<storage, read> grad_ln_pi: array<f32>;
@group(0) @binding(12) var<storage, read_write> adjoint: array<f32>;

fn n_values() -> u32 {
    return hp.chains * hp.n_sites;
}

// q = the chain's state: the trajectory starts there.
@compute @workgroup_size(WG)
fn begin(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i < n_values() {
        q[i] = chain[i];
    }
}

// Latent space: the flow pass transforms its input in place, so it gets a copy of q.
@compute @workgroup_size(WG)
fn to_work(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i < n_values() {
        work[i] = q[i];
    }
}

// Latent space: the backward stage starts from the adjoint of x, -grad ln pi(x).
@compute @workgroup_size(WG)
fn seed(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i < n_values() {
        adjoint[i] = -grad_ln_pi[i];
    }
}

@compute @workgroup_size(WG)
fn kick(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i < n_values() {
        p[i] += hp.coef * force_input[i];
    }
}

@compute @workgroup_size(WG)
fn drift(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i < n_values() {
        q[i] += hp.coef * p[i];
    }
}

// One workgroup per chain (a 2D grid past 65,535 chains): H = U + p.p / 2, the kinetic term
// summed in a fixed order.
@compute @workgroup_size(WG)
fn hamiltonian(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let c = workgroup_index(wid, nwg);
    let base = c * hp.n_sites;
    var acc = 0.0;
    if c < hp.chains {
        for (var s = lid.x; s < hp.n_sites; s += WG) {
            let v = p[base + s];
            acc += v * v;
        }
    }
    let kinetic = workgroup_sum(lid.x, vec4<f32>(acc, 0.0, 0.0, 0.0)).x;
    if lid.x == 0u && c < hp.chains {
        var u = -log_pi[c];
        if hp.latent != 0u {
            u -= log_det[c];
        }
        ham[hp.slot * hp.chains + c] = u + 0.5 * kinetic;
    }
}

// Per chain: accept with probability min(1, exp(H_start - H_end)); a NaN or +infinite dH rejects,
// and dH = -infinity (a start H of +infinity with a finite end, say) accepts.
@compute @workgroup_size(WG)
fn decide(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let c = linear_id(gid, nwg);
    if c >= hp.chains {
        return;
    }
    let dh = ham[hp.chains + c] - ham[c];
    let u = uniform01(bits[c]);
    // A NaN or +infinite dh rejects (tested on the bits, which no compiler may assume away); a
    // chain whose start was not finite (dh = -infinity) moves.
    let ok = (is_finite(dh) || is_negative_infinity(dh)) && (dh <= 0.0 || u < exp(-dh));
    accepted[c] = select(0u, 1u, ok);
}

// Per site: an accepted chain moves to the end of its trajectory.
@compute @workgroup_size(WG)
fn commit(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i < n_values() && accepted[i / hp.n_sites] != 0u {
        chain[i] = q[i];
    }
}
