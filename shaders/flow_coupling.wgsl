// The coupling steps of one flow layer that a dispatch applies (a group of consecutive steps,
// src/flow/pass.rs): every invocation carries four (sample, block) rows, one per vec4 lane,
// through the group's steps of the layer's shared Real NVP bijector (Appendix B), in place, in
// the generation direction (`generate`: x_upd = z_upd * exp(s(z_keep)) + t(z_keep), steps
// ascending) or inverted (`infer`, steps descending). Each row adds the steps' log|det| to its
// own slot of `ld_partial` one step at a time (the same sums whatever the grouping), which
// flow_log_q sums in a fixed order, and, when training, saves the four values each step sees
// (`steps`), from which flow_backward recomputes the MLP activations. A group is as many steps
// as keep every invocation within llvmpipe's loop limit (docs/ARCHITECTURE.md): one dispatch per
// layer for narrow MLPs, where a dispatch per step cost more in overhead than in work at small
// batches. CPU twin: src/reference/flow.rs.

override WG: u32 = 64u;

@group(0) @binding(1) var<storage, read_write> state: array<f32>;
@group(0) @binding(3) var<storage, read> blocks: array<u32>;
@group(0) @binding(4) var<storage, read> masks: array<u32>;
@group(0) @binding(5) var<storage, read_write> ld_partial: array<f32>;
@group(0) @binding(6) var<storage, read_write> steps: array<f32>;

fn run(gid: vec3<u32>, nwg: vec3<u32>, forward: bool) {
    let first = 4u * linear_id(gid, nwg);
    let rows = lay.batch * lay.n_blocks;
    if first >= rows {
        return;
    }
    // Lanes past the last row repeat it and store nothing.
    var row: array<u32, 4>;
    var site: array<array<u32, 4>, 4>;
    var v: array<vec4<f32>, 4>;
    var slot: array<u32, 4>;
    var ld: vec4<f32>;
    for (var r = 0u; r < 4u; r++) {
        row[r] = min(first + r, rows - 1u);
        for (var j = 0u; j < 4u; j++) {
            site[r][j] = block_site(row[r], j);
            v[j][r] = state[site[r][j]];
        }
        slot[r] = row[r] / lay.n_blocks * lay.ld_stride + row[r] % lay.n_blocks;
        ld[r] = ld_partial[slot[r]];
    }
    let n_real = min(rows - first, 4u);
    for (var i = 0u; i < lay.step_count; i++) {
        let k = group_step(i, forward);
        // Loops run to the constant 4 (and test the row inside) so that every index is a
        // constant.
        if lay.save_steps != 0u {
            for (var r = 0u; r < 4u; r++) {
                if r < n_real {
                    let at = ((lay.row_offset + row[r]) * lay.couplings + k) * 4u;
                    for (var j = 0u; j < 4u; j++) {
                        steps[at + j] = v[j][r];
                    }
                }
            }
        }
        let m = step_mask(k);
        let base = step_base(k);
        let scale = s_scale(base);
        let keep = Pair(pick(v, m.k0), pick(v, m.k1));
        // Each MLP's activations are dead after its output: one slot serves both.
        let o = mlp_forward(0u, base, keep.x, keep.y);
        let s = Pair(scale.x * s_tanh(o.x), scale.y * s_tanh(o.y));
        let t = mlp_forward(0u, base + mlp_size(H, M) + 2u, keep.x, keep.y);
        let u = Pair(pick(v, m.u0), pick(v, m.u1));
        if forward {
            v = place(v, m.u0, u.x * exp(s.x) + t.x);
            v = place(v, m.u1, u.y * exp(s.y) + t.y);
            ld += s.x + s.y;
        } else {
            v = place(v, m.u0, (u.x - t.x) * exp(-s.x));
            v = place(v, m.u1, (u.y - t.y) * exp(-s.y));
            ld += -(s.x + s.y);
        }
    }
    for (var r = 0u; r < 4u; r++) {
        if r < n_real {
            for (var j = 0u; j < 4u; j++) {
                state[site[r][j]] = v[j][r];
            }
            ld_partial[slot[r]] = ld[r];
        }
    }
}

@compute @workgroup_size(WG)
fn generate(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    run(gid, nwg, true);
}

@compute @workgroup_size(WG)
fn infer(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    run(gid, nwg, false);
}
