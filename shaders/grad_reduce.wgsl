// Gradients of one coupling step's shared weights. From flow_backward's row factors (its GA = 0
// shape; `reduce` and `reduce_hidden`): each parameter sums, over the rows of a chunk in order,
// the product of its output delta and its input activation (a bias: the delta alone; a tanh scale: its precomputed factor). The factors are stored
// factor-major (factor f of row r at f * stride + r, the chunk padded with zero rows to a
// multiple of 4), so each sum streams two contiguous vectors, four rows per vec4. Each lane keeps
// its own partial sum across the chunks of a (layer, step) in `acc4`; the last chunk folds the
// four into the gradient. Fixed order, no atomics, and the same bits however the rows are
// chunked (chunks start at multiples of 4). CPU twin: src/reference/backward.rs.

override WG: u32 = 64u;

const NONE: u32 = 0xffffffffu;
const FIRST_CHUNK: u32 = 1u;
const LAST_CHUNK: u32 = 2u;

struct Red {
    param_base: u32,
    coupling_size: u32,
    hidden: u32,
    mlp_layers: u32,
    // Rows of this chunk, and vec4s per factor in `rows` (the stride over 4); for
    // sum_partials: partial sums, and vec4s per partial sum.
    rows: u32,
    stride4: u32,
    flags: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> rd: Red;
@group(0) @binding(1) var<storage, read> rows: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> acc4: array<vec4<f32>>;

// The running four-lane sum of parameter p of the step, before this chunk.
fn start(p: u32) -> vec4<f32> {
    if (rd.flags & FIRST_CHUNK) != 0u {
        return vec4<f32>(0.0);
    }
    return acc4[p];
}

// Keeps the running sum for the next chunk, or, after the last, adds it to the gradient.
fn finish(p: u32, acc: vec4<f32>) {
    if (rd.flags & LAST_CHUNK) != 0u {
        grad[rd.param_base + p] += (acc.x + acc.y) + (acc.z + acc.w);
    } else {
        acc4[p] = acc;
    }
}

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
    let p = linear_id(gid, nwg);
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
    let n4 = (rd.rows + 3u) / 4u;
    let dx = f.x * rd.stride4;
    var acc = start(p);
    if f.y == NONE {
        for (var r = 0u; r < n4; r++) {
            acc += rows[dx + r];
        }
    } else {
        let ax = f.y * rd.stride4;
        for (var r = 0u; r < n4; r++) {
            acc += rows[dx + r] * rows[ax + r];
        }
    }
    finish(p, acc);
}

// The hidden-to-hidden weights W_l (H x H, the bulk of the parameters), a 4 x 4 tile of (j, i)
// per invocation: per four rows, 4 delta and 4 activation vectors feed 64 multiply-adds.
@compute @workgroup_size(WG)
fn reduce_hidden(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let q = linear_id(gid, nwg);
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
    // Factor streams of the tile's 4 deltas and 4 activations; past the width they repeat the
    // last one, and their sums are dropped.
    var d: array<u32, 4>;
    var a: array<u32, 4>;
    for (var c = 0u; c < 4u; c++) {
        d[c] = (f_a + h + min(j0 + c, h - 1u)) * rd.stride4;
        a[c] = (f_a + min(i0 + c, h - 1u)) * rd.stride4;
    }
    // acc[jj][ii]: the four lanes' sums of weight (j0 + jj, i0 + ii).
    var acc: array<mat4x4<f32>, 4>;
    for (var jj = 0u; jj < 4u; jj++) {
        for (var ii = 0u; ii < 4u; ii++) {
            if j0 + jj < h && i0 + ii < h {
                acc[jj][ii] = start(p_w + (j0 + jj) * h + i0 + ii);
            }
        }
    }
    let n4 = (rd.rows + 3u) / 4u;
    for (var r = 0u; r < n4; r++) {
        let av = mat4x4<f32>(rows[a[0] + r], rows[a[1] + r], rows[a[2] + r], rows[a[3] + r]);
        acc[0] += mat4x4<f32>(rows[d[0] + r] * av[0], rows[d[0] + r] * av[1], rows[d[0] + r] * av[2], rows[d[0] + r] * av[3]);
        acc[1] += mat4x4<f32>(rows[d[1] + r] * av[0], rows[d[1] + r] * av[1], rows[d[1] + r] * av[2], rows[d[1] + r] * av[3]);
        acc[2] += mat4x4<f32>(rows[d[2] + r] * av[0], rows[d[2] + r] * av[1], rows[d[2] + r] * av[2], rows[d[2] + r] * av[3]);
        acc[3] += mat4x4<f32>(rows[d[3] + r] * av[0], rows[d[3] + r] * av[1], rows[d[3] + r] * av[2], rows[d[3] + r] * av[3]);
    }
    for (var jj = 0u; jj < 4u; jj++) {
        for (var ii = 0u; ii < 4u; ii++) {
            if j0 + jj < h && i0 + ii < h {
                finish(p_w + (j0 + jj) * h + i0 + ii, acc[jj][ii]);
            }
        }
    }
}

// Gradients from flow_backward's per-invocation partial sums (GA = 1) of a group of coupling
// steps, in `rows`: `rd.rows` of them, each of `coupling_size` floats (the group's parameters,
// consecutive in the parameters too), padded to `stride4` vec4s. Each invocation sums four
// parameters over the invocations in order, one per lane: on lavapipe every load at an address
// that differs between invocations costs per-lane work, so a vec4 load carries four sums for
// the price of about two (docs/BENCHMARKS.md). The same order, hence the same bits, as one sum
// per parameter.
@compute @workgroup_size(WG)
fn sum_partials(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let q = linear_id(gid, nwg);
    if 4u * q >= rd.coupling_size {
        return;
    }
    var acc = vec4<f32>(0.0);
    for (var i = 0u; i < rd.rows; i++) {
        acc += rows[i * rd.stride4 + q];
    }
    for (var c = 0u; c < 4u; c++) {
        if 4u * q + c < rd.coupling_size {
            grad[rd.param_base + 4u * q + c] += acc[c];
        }
    }
}
