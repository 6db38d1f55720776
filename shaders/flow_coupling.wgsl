// One layer of the flow: every (sample, block) invocation runs the layer's shared Real NVP
// bijector (Appendix B) on its block's four values, in place, in the generation direction
// (`generate`: x_upd = z_upd * exp(s(z_keep)) + t(z_keep)) or inverted (`infer`). Each
// invocation adds its log|det| to its own slot of `ld_partial`, which flow_log_q sums in a fixed
// order, and, when training, saves the four values each coupling step sees (`steps`), from
// which flow_backward recomputes the MLP activations. CPU twin: src/reference/flow.rs.

override WG: u32 = 64u;

@group(0) @binding(1) var<storage, read_write> state: array<f32>;
@group(0) @binding(2) var<storage, read> params: array<f32>;
@group(0) @binding(3) var<storage, read> blocks: array<u32>;
@group(0) @binding(4) var<storage, read> masks: array<u32>;
@group(0) @binding(5) var<storage, read_write> ld_partial: array<f32>;
@group(0) @binding(6) var<storage, read_write> steps: array<f32>;

fn run(gid: vec3<u32>, nwg: vec3<u32>, forward: bool) {
    let row = gid.x + gid.y * nwg.x * WG;
    let sample = row / lay.n_blocks;
    let blk = row % lay.n_blocks;
    if sample >= lay.batch {
        return;
    }
    var site: array<u32, 4>;
    var v: array<f32, 4>;
    for (var j = 0u; j < 4u; j++) {
        site[j] = sample * lay.n_sites + blocks[(lay.block_offset + blk) * 4u + j];
        v[j] = state[site[j]];
    }
    let h = lay.hidden;
    let m = lay.mlp_layers;
    let ms = mlp_size(h, m);
    let k = lay.k;
    if lay.save_steps != 0u {
        let at = ((lay.row_offset + row) * lay.couplings + k) * 4u;
        for (var j = 0u; j < 4u; j++) {
            steps[at + j] = v[j];
        }
    }
    let mask = masks[lay.mask_offset + k];
    let u0 = mask & 3u;
    let u1 = (mask >> 2u) & 3u;
    let k0 = (mask >> 4u) & 3u;
    let k1 = (mask >> 6u) & 3u;
    let base = lay.param_offset + k * (2u * ms + 2u);
    let s = s_scale(base, h, m) * s_tanh(mlp_forward(base, h, m, v[k0], v[k1]));
    let t = mlp_forward(base + ms + 2u, h, m, v[k0], v[k1]);
    var ld: f32;
    if forward {
        v[u0] = v[u0] * exp(s.x) + t.x;
        v[u1] = v[u1] * exp(s.y) + t.y;
        ld = s.x + s.y;
    } else {
        v[u0] = (v[u0] - t.x) * exp(-s.x);
        v[u1] = (v[u1] - t.y) * exp(-s.y);
        ld = -(s.x + s.y);
    }
    state[site[u0]] = v[u0];
    state[site[u1]] = v[u1];
    ld_partial[sample * lay.ld_stride + blk] += ld;
}

@compute @workgroup_size(WG)
fn generate(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    run(gid, nwg, true);
}

@compute @workgroup_size(WG)
fn infer(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    run(gid, nwg, false);
}
