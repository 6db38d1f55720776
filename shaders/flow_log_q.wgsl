// Per-sample log-densities after (or before) the flow layers, one workgroup per sample:
//   PRIOR:   ln_q = ln N(state; 0, 1)
//   LOG_DET: log_det = sum of the layers' per-block partials (which are reset to 0 for the next
//            pass), and ln_q -= log_det (generation) or += log_det (inference, INFER set).
// Sums run in a fixed order (strided per thread, then a tree), so results are deterministic.
// CPU twin: src/reference/flow.rs.

override WG: u32 = 64u; // a power of two

const PRIOR: u32 = 1u;
const LOG_DET: u32 = 2u;
const INFER: u32 = 4u;

struct Params {
    batch: u32,
    n_sites: u32,
    ld_stride: u32,
    mode: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> state: array<f32>;
@group(0) @binding(2) var<storage, read_write> ld_partial: array<f32>;
@group(0) @binding(3) var<storage, read_write> log_det: array<f32>;
@group(0) @binding(4) var<storage, read_write> ln_q: array<f32>;


@compute @workgroup_size(WG)
fn log_q(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let s = workgroup_index(wid, nwg);
    var zz = 0.0;
    var ld = 0.0;
    if s < p.batch {
        if (p.mode & PRIOR) != 0u {
            for (var i = lid.x; i < p.n_sites; i += WG) {
                let z = state[s * p.n_sites + i];
                zz += z * z;
            }
        }
        if (p.mode & LOG_DET) != 0u {
            for (var i = lid.x; i < p.ld_stride; i += WG) {
                ld += ld_partial[s * p.ld_stride + i];
                ld_partial[s * p.ld_stride + i] = 0.0;
            }
        }
    }
    // Both sums in one tree: z.z in lane x, log|det| in lane y.
    let sums = workgroup_sum(lid.x, vec4<f32>(zz, ld, 0.0, 0.0));
    if lid.x == 0u && s < p.batch {
        var lq = ln_q[s];
        if (p.mode & PRIOR) != 0u {
            lq = -0.5 * sums.x - 0.9189385332046727 * f32(p.n_sites);
        }
        if (p.mode & LOG_DET) != 0u {
            log_det[s] = sums.y;
            lq += select(-sums.y, sums.y, (p.mode & INFER) != 0u);
        }
        ln_q[s] = lq;
    }
}
