// Gradients of one coupling step's shared weights. From flow_backward's row factors (its GA = 0
// shape; `reduce`, `reduce_hidden`, then `fold`): each parameter sums, over the rows, the
// product of its output delta and its input activation (a bias: the delta alone; a tanh scale:
// its precomputed factor). The factors are stored factor-major (factor f of row r at
// f * stride + r, the chunk padded with zero rows to a multiple of 4), so each sum streams two
// contiguous vectors, four rows per vec4, one sum per lane. The rows of a chunk are cut into
// slices of `slice_rows` (a multiple of 4): `reduce` and `reduce_hidden` sum each parameter over
// each slice, in parallel (on a GPU, weights x slices invocations rather than one long loop per
// weight), into `slices`; `fold` then adds a parameter's slice sums in order onto its running
// four-lane sum in `acc4`, and after the layer's last chunk adds the four to the gradient.
// Chunks hold whole slices, so the slices, and the bits, are the same however the rows are
// chunked. That is the SL = 1 variant (GPUs). With SL = 0 (CPU adapters, where a few cores take
// hundreds of weights each anyway) a chunk is one slice and `reduce` continues each running sum
// in place, with no `fold` (a fold cost lavapipe 5-15% of the reduction, and deciding at run time
// inside `reduce_hidden` twice that: its tile of sums left registers). Fixed order, no atomics.
// CPU twin: src/reference/backward.rs.

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
    // Rows per slice of the chunk (a multiple of 4).
    slice_rows: u32,
}

@group(0) @binding(0) var<uniform> rd: Red;
@group(0) @binding(1) var<storage, read> rows: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> acc4: array<vec4<f32>>;
// [slice][parameter of the step]: the four-lane sums over each slice of the chunk.
@group(0) @binding(4) var<storage, read_write> slices: array<vec4<f32>>;

fn n_slices() -> u32 {
    return (rd.rows + rd.slice_rows - 1u) / rd.slice_rows;
}

// The vec4 rows [first, end) of slice s of the chunk.
fn slice_range(s: u32) -> vec2<u32> {
    let per = rd.slice_rows / 4u;
    return vec2<u32>(s * per, min((s + 1u) * per, (rd.rows + 3u) / 4u));
}

// The running four-lane sum of parameter p of the step, before this chunk.
fn start(p: u32) -> vec4<f32> {
    if (rd.flags & FIRST_CHUNK) != 0u {
        return vec4<f32>(0.0);
    }
    return acc4[p];
}

// Where parameter p's sum over slice s starts, and where it goes.
#if SL
fn slice_start(p: u32) -> vec4<f32> {
    return vec4<f32>(0.0);
}

fn slice_end(s: u32, p: u32, acc: vec4<f32>) {
    slices[s * rd.coupling_size + p] = acc;
}
#else
fn slice_start(p: u32) -> vec4<f32> {
    return start(p);
}

fn slice_end(s: u32, p: u32, acc: vec4<f32>) {
    finish(p, acc);
}
#endif

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

// Every parameter but the hidden-to-hidden weights, one invocation per (slice, parameter).
@compute @workgroup_size(WG)
fn reduce(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    let p = id % rd.coupling_size;
    let s = id / rd.coupling_size;
    if s >= n_slices() {
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
    let span = slice_range(s);
    let dx = f.x * rd.stride4;
    var acc = slice_start(p);
    if f.y == NONE {
        for (var r = span.x; r < span.y; r++) {
            acc += rows[dx + r];
        }
    } else {
        let ax = f.y * rd.stride4;
        for (var r = span.x; r < span.y; r++) {
            acc += rows[dx + r] * rows[ax + r];
        }
    }
    slice_end(s, p, acc);
}

// The hidden-to-hidden weights W_l (H x H, the bulk of the parameters), a 4 x 4 tile of (j, i)
// per invocation and slice: per four rows, 4 delta and 4 activation vectors feed 64
// multiply-adds.
@compute @workgroup_size(WG)
fn reduce_hidden(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    let h = rd.hidden;
    let m = rd.mlp_layers;
    let tps = (h + 3u) / 4u;
    let per_layer = tps * tps;
    let tiles = 2u * (m - 1u) * per_layer;
    let q = id % tiles;
    let s = id / tiles;
    if s >= n_slices() {
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
    // acc[jj][ii]: the four lanes' sums of weight (j0 + jj, i0 + ii) over the slice.
    var acc: array<mat4x4<f32>, 4>;
    for (var jj = 0u; jj < 4u; jj++) {
        for (var ii = 0u; ii < 4u; ii++) {
            if j0 + jj < h && i0 + ii < h {
                acc[jj][ii] = slice_start(p_w + (j0 + jj) * h + i0 + ii);
            }
        }
    }
    let span = slice_range(s);
    for (var r = span.x; r < span.y; r++) {
        let av = mat4x4<f32>(rows[a[0] + r], rows[a[1] + r], rows[a[2] + r], rows[a[3] + r]);
        acc[0] += mat4x4<f32>(rows[d[0] + r] * av[0], rows[d[0] + r] * av[1], rows[d[0] + r] * av[2], rows[d[0] + r] * av[3]);
        acc[1] += mat4x4<f32>(rows[d[1] + r] * av[0], rows[d[1] + r] * av[1], rows[d[1] + r] * av[2], rows[d[1] + r] * av[3]);
        acc[2] += mat4x4<f32>(rows[d[2] + r] * av[0], rows[d[2] + r] * av[1], rows[d[2] + r] * av[2], rows[d[2] + r] * av[3]);
        acc[3] += mat4x4<f32>(rows[d[3] + r] * av[0], rows[d[3] + r] * av[1], rows[d[3] + r] * av[2], rows[d[3] + r] * av[3]);
    }
    for (var jj = 0u; jj < 4u; jj++) {
        for (var ii = 0u; ii < 4u; ii++) {
            if j0 + jj < h && i0 + ii < h {
                slice_end(s, p_w + (j0 + jj) * h + i0 + ii, acc[jj][ii]);
            }
        }
    }
}

// Per parameter: its slice sums, in order, onto its running sum (see the top).
@compute @workgroup_size(WG)
fn fold(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let p = linear_id(gid, nwg);
    if p >= rd.coupling_size {
        return;
    }
    var acc = start(p);
    for (var s = 0u; s < n_slices(); s++) {
        acc += slices[s * rd.coupling_size + p];
    }
    finish(p, acc);
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
