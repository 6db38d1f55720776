// Gradients of one coupling step's shared weights: each parameter adds to its gradient, row by
// row of a chunk in order, the product of its output delta and its input activation from
// flow_backward's row factors (a bias: the delta alone; a tanh scale: its precomputed factor).
// Fixed order, no atomics: the same inputs give the same bits. The running sum starts from the
// gradient itself, so splitting the rows into chunks does not change a single bit.
// CPU twin: src/reference/backward.rs.

override WG: u32 = 64u;

const NONE: u32 = 0xffffffffu;

struct Red {
    param_base: u32,
    coupling_size: u32,
    hidden: u32,
    mlp_layers: u32,
    rows: u32,
    row_size: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> rd: Red;
@group(0) @binding(1) var<storage, read> rows: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad: array<f32>;

// (delta index, activation index or NONE) of parameter q of an MLP, within its row factors.
fn mlp_factor(q: u32, h: u32, m: u32) -> vec2<u32> {
    if q < 2u * h {
        return vec2<u32>(2u + q / 2u, q % 2u); // W0[j][i]
    }
    if q < 3u * h {
        return vec2<u32>(2u + q - 2u * h, NONE); // b0[j]
    }
    let hidden_size = h * h + h;
    var r = q - 3u * h;
    if r < (m - 1u) * hidden_size {
        let l = 1u + r / hidden_size;
        let p_a = factors_hidden(h, l);
        let w = r % hidden_size;
        if w < h * h {
            return vec2<u32>(p_a + h + w / h, p_a + w % h); // W_l[j][i]
        }
        return vec2<u32>(p_a + h + w - h * h, NONE); // b_l[j]
    }
    r -= (m - 1u) * hidden_size;
    let p_last = factors_last(h, m);
    if r < 2u * h {
        return vec2<u32>(p_last + h + r / h, p_last + r % h); // W_out[o][i]
    }
    return vec2<u32>(p_last + h + r - 2u * h, NONE); // b_out[o]
}

// Whether MLP parameter q is a hidden-to-hidden weight (W_l, l >= 1): reduce_hidden's share.
fn is_hidden_weight(q: u32, h: u32, m: u32) -> bool {
    let hidden_size = h * h + h;
    return q >= 3u * h && q - 3u * h < (m - 1u) * hidden_size && (q - 3u * h) % hidden_size < h * h;
}

// Every parameter but the hidden-to-hidden weights, one invocation each.
@compute @workgroup_size(WG)
fn reduce(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let p = gid.x + gid.y * nwg.x * WG;
    if p >= rd.coupling_size {
        return;
    }
    let h = rd.hidden;
    let m = rd.mlp_layers;
    let ms = mlp_size(h, m);
    let f_mlp = factors_size(h, m);
    let q = select(p, p - ms - 2u, p >= ms + 2u);
    if p != ms && p != ms + 1u && is_hidden_weight(q, h, m) {
        return;
    }
    var f: vec2<u32>;
    if p < ms {
        f = mlp_factor(p, h, m);
    } else if p < ms + 2u {
        f = vec2<u32>(f_mlp + p - ms, NONE); // tanh scale
    } else {
        let g = mlp_factor(p - ms - 2u, h, m);
        f = vec2<u32>(g.x + f_mlp + 2u, select(g.y + f_mlp + 2u, NONE, g.y == NONE));
    }
    var acc = grad[rd.param_base + p];
    if f.y == NONE {
        for (var r = 0u; r < rd.rows; r++) {
            acc += rows[r * rd.row_size + f.x];
        }
    } else {
        for (var r = 0u; r < rd.rows; r++) {
            acc += rows[r * rd.row_size + f.x] * rows[r * rd.row_size + f.y];
        }
    }
    grad[rd.param_base + p] = acc;
}

// The hidden-to-hidden weights W_l (H x H, the bulk of the parameters), a 4 x 4 tile of
// (j, i) per invocation: each row's 4 deltas and 4 activations feed 16 sums, a quarter of the
// loads of one invocation per weight. Same fixed order over the rows.
@compute @workgroup_size(WG)
fn reduce_hidden(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let q = gid.x + gid.y * nwg.x * WG;
    let h = rd.hidden;
    let m = rd.mlp_layers;
    let tps = (h + 3u) / 4u;
    let per_layer = tps * tps;
    if q >= 2u * (m - 1u) * per_layer {
        return;
    }
    let mlp = q / ((m - 1u) * per_layer);
    let rem = q % ((m - 1u) * per_layer);
    let l = 1u + rem / per_layer;
    let j0 = (rem % per_layer) / tps * 4u;
    let i0 = (rem % per_layer) % tps * 4u;
    let p_w = select(0u, mlp_size(h, m) + 2u, mlp == 1u) + 3u * h + (l - 1u) * (h * h + h);
    let f_a = select(0u, factors_size(h, m) + 2u, mlp == 1u) + factors_hidden(h, l);
    var acc: array<vec4<f32>, 4>;
    for (var jj = 0u; jj < 4u; jj++) {
        for (var ii = 0u; ii < 4u; ii++) {
            if j0 + jj < h && i0 + ii < h {
                acc[jj][ii] = grad[rd.param_base + p_w + (j0 + jj) * h + i0 + ii];
            }
        }
    }
    for (var r = 0u; r < rd.rows; r++) {
        let rb = r * rd.row_size + f_a;
        var a = vec4<f32>(0.0);
        var d = vec4<f32>(0.0);
        for (var c = 0u; c < 4u; c++) {
            if i0 + c < h {
                a[c] = rows[rb + i0 + c];
            }
            if j0 + c < h {
                d[c] = rows[rb + h + j0 + c];
            }
        }
        acc[0] += d.x * a;
        acc[1] += d.y * a;
        acc[2] += d.z * a;
        acc[3] += d.w * a;
    }
    for (var jj = 0u; jj < 4u; jj++) {
        for (var ii = 0u; ii < 4u; ii++) {
            if j0 + jj < h && i0 + ii < h {
                grad[rd.param_base + p_w + (j0 + jj) * h + i0 + ii] = acc[jj][ii];
            }
        }
    }
}
