// Backward pass of one flow layer, hand-derived. For each (sample, block) row the adjoint of the
// block's four values is gathered from the per-site adjoint, carried back through the coupling
// steps one step per dispatch (recomputing the MLP activations from the saved step input), and
// scattered back. Each step also writes per-row factors (layer inputs and output deltas of every
// linear map) from which grad_reduce forms the shared weights' gradients in a fixed order.
//
// Per row and coupling step, with LD coefficient gamma (d loss / d log|det| of the pass):
//   generation: u' = u e^s + t    du = a e^s,  ds = a u e^s + gamma,   dt = a
//   inference:  u' = (u - t) e^-s du = a e^-s, ds = -a u' - gamma,     dt = -a e^-s
// s = scale * tanh(o): d scale = ds tanh(o), do = ds scale (1 - tanh^2 o).
// Row factors mirror the parameter layout [s-MLP | scale | t-MLP] (per MLP: mlp_layout.wgsl).
// CPU twin: src/reference/backward.rs.

override WG: u32 = 64u;

@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read> masks: array<u32>;
@group(0) @binding(3) var<storage, read> steps: array<f32>;
@group(0) @binding(4) var<storage, read> gamma: array<f32>;
@group(0) @binding(5) var<storage, read_write> adj_rows: array<f32>;
@group(0) @binding(6) var<storage, read_write> rows: array<f32>;
@group(0) @binding(7) var<storage, read_write> adj_state: array<f32>;
@group(0) @binding(8) var<storage, read> blocks: array<u32>;

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

fn block_site(row: u32, j: u32) -> u32 {
    let sample = row / lay.n_blocks;
    let blk = row % lay.n_blocks;
    return sample * lay.n_sites + blocks[(lay.block_offset + blk) * 4u + j];
}

@compute @workgroup_size(WG)
fn gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = linear_id(gid, nwg);
    if row >= lay.batch * lay.n_blocks {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        adj_rows[row * 4u + j] = adj_state[block_site(row, j)];
    }
}

@compute @workgroup_size(WG)
fn scatter(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = linear_id(gid, nwg);
    if row >= lay.batch * lay.n_blocks {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        adj_state[block_site(row, j)] = adj_rows[row * 4u + j];
    }
}

// A row factor, written only when the pass forms parameter gradients (row_size > 0).
fn put(i: u32, v: f32) {
    if lay.row_size != 0u {
        rows[i] = v;
    }
}

// Backward through the MLP at `base` whose activations are in `acts`, from the output gradient
// d_out; writes the row factors at `rb` and returns the gradient with respect to the input.
fn mlp_backward(base: u32, h: u32, m: u32, x: vec2<f32>, d_out: vec2<f32>, rb: u32) -> vec2<f32> {
    var g: array<f32, MAX_HIDDEN>;
    var g2: array<f32, MAX_HIDDEN>;
    put(rb, x.x);
    put(rb + 1u, x.y);
    let w_out = base + mlp_out_offset(h, m);
    let last = (m - 1u) * h;
    let p_last = rb + factors_last(h, m);
    for (var i = 0u; i < h; i++) {
        put(p_last + i, acts[last + i]);
        g[i] = (params[w_out + i] * d_out.x + params[w_out + h + i] * d_out.y) * elu_grad(acts[last + i]);
    }
    put(p_last + h, d_out.x);
    put(p_last + h + 1u, d_out.y);
    for (var l = m - 1u; l > 0u; l--) {
        let w = base + 3u * h + (l - 1u) * (h * h + h);
        let p_a = rb + factors_hidden(h, l);
        for (var i = 0u; i < h; i++) {
            put(p_a + i, acts[(l - 1u) * h + i]);
            put(p_a + h + i, g[i]);
        }
        for (var i = 0u; i < h; i++) {
            var acc = 0.0;
            for (var j = 0u; j < h; j++) {
                acc += params[w + j * h + i] * g[j];
            }
            g2[i] = acc * elu_grad(acts[(l - 1u) * h + i]);
        }
        for (var i = 0u; i < h; i++) {
            g[i] = g2[i];
        }
    }
    var d_in = vec2<f32>(0.0);
    for (var j = 0u; j < h; j++) {
        put(rb + 2u + j, g[j]);
        d_in += vec2<f32>(params[base + 2u * j], params[base + 2u * j + 1u]) * g[j];
    }
    return d_in;
}

@compute @workgroup_size(WG)
fn coupling_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let cr = linear_id(gid, nwg);
    let row = lay.chunk_start + cr;
    if cr >= lay.chunk_rows || row >= lay.batch * lay.n_blocks {
        return;
    }
    let sample = row / lay.n_blocks;
    let h = lay.hidden;
    let m = lay.mlp_layers;
    let ms = mlp_size(h, m);
    let k = lay.k;
    var v: array<f32, 4>;
    var a: array<f32, 4>;
    let at = ((lay.row_offset + row) * lay.couplings + k) * 4u;
    for (var j = 0u; j < 4u; j++) {
        v[j] = steps[at + j];
        a[j] = adj_rows[row * 4u + j];
    }
    let mask = masks[lay.mask_offset + k];
    let u0 = mask & 3u;
    let u1 = (mask >> 2u) & 3u;
    let k0 = (mask >> 4u) & 3u;
    let k1 = (mask >> 6u) & 3u;
    let keep = vec2<f32>(v[k0], v[k1]);
    let base_s = lay.param_offset + k * (2u * ms + 2u);
    let base_t = base_s + ms + 2u;

    let th = s_tanh(mlp_forward(base_s, h, m, keep.x, keep.y));
    let scale = s_scale(base_s, h, m);
    let s = scale * th;
    let t = mlp_forward(base_t, h, m, keep.x, keep.y); // leaves the t activations in `acts`
    let au = vec2<f32>(a[u0], a[u1]);
    let u = vec2<f32>(v[u0], v[u1]);
    let g = gamma[sample];
    var ds: vec2<f32>;
    var dt: vec2<f32>;
    var e: vec2<f32>;
    if lay.forward != 0u {
        e = exp(s);
        ds = au * u * e + g;
        dt = au;
    } else {
        e = exp(-s);
        ds = -au * (u - t) * e - g;
        dt = -au * e;
    }
    a[u0] = au.x * e.x;
    a[u1] = au.y * e.y;

    let rb = cr * lay.row_size;
    let f_mlp = factors_size(h, m);
    let dk_t = mlp_backward(base_t, h, m, keep, dt, rb + f_mlp + 2u);
    let scale_at = rb + f_mlp;
    let ds_scale = ds * th;
    put(scale_at, ds_scale.x);
    put(scale_at + 1u, ds_scale.y);
    _ = mlp_forward(base_s, h, m, keep.x, keep.y);
    let dk_s = mlp_backward(base_s, h, m, keep, ds * scale * (1.0 - th * th), rb);
    a[k0] += dk_s.x + dk_t.x;
    a[k1] += dk_s.y + dk_t.y;
    for (var j = 0u; j < 4u; j++) {
        adj_rows[row * 4u + j] = a[j];
    }
}
