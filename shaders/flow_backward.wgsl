// Backward pass of one flow layer, hand-derived. For each (sample, block) row the adjoint of the
// block's four values is gathered from the per-site adjoint, carried back through the coupling
// steps (recomputing the MLP activations from the saved step input; four rows per invocation,
// one per vec4 lane, as in lib/mlp.wgsl), and scattered back. A dispatch carries its rows back
// through a group of consecutive steps (src/flow/backward.rs chooses how many), in the reverse
// of the pass's order. The shared weights' gradients are formed in one of two shapes, chosen by
// src/flow/backward.rs:
// - GA = 0: each step writes per-row factors (layer inputs and output deltas of every linear
//   map), from which grad_reduce forms the gradients in a fixed order (wide MLPs, GPUs); one
//   step per dispatch;
// - GA = 1: each invocation carries `lay.quads` groups of four rows in turn and sums its own
//   rows' gradient of every weight of a step in private accumulators with constant indices
//   (narrow MLPs on CPU adapters, where the factors' round trip through memory cost more than
//   the arithmetic), then writes that partial sum once per step; grad_reduce::sum_partials adds
//   the invocations' partials of the group's steps in order.
//
// Per row and coupling step, with LD coefficient gamma (d loss / d log|det| of the pass):
//   generation: u' = u e^s + t    du = a e^s,  ds = a u e^s + gamma,   dt = a
//   inference:  u' = (u - t) e^-s du = a e^-s, ds = -a u' - gamma,     dt = -a e^-s
// s = scale * tanh(o): d scale = ds tanh(o), do = ds scale (1 - tanh^2 o).
// Binding 2 holds the group's weights (lib/weights.wgsl). Row factors mirror the parameter
// layout [s-MLP | scale | t-MLP] (per MLP: mlp_layout.wgsl).
// CPU twin: src/reference/backward.rs.

override WG: u32 = 64u;

@group(0) @binding(1) var<storage, read> masks: array<u32>;
@group(0) @binding(3) var<storage, read> steps: array<f32>;
@group(0) @binding(4) var<storage, read> gamma: array<f32>;
@group(0) @binding(5) var<storage, read_write> adj_rows: array<f32>;
#if GA
@group(0) @binding(6) var<storage, read_write> partials: array<f32>;
#else
@group(0) @binding(6) var<storage, read_write> rows: array<vec4<f32>>;
#endif
@group(0) @binding(7) var<storage, read_write> adj_state: array<f32>;
@group(0) @binding(8) var<storage, read> blocks: array<u32>;

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

#if GA
// This invocation's gradient of every weight of the step, summed over its rows, in arrays shaped
// like the loops that fill and write them, [MLP: 0 = s, 1 = t] first, so every index is a loop
// variable over a whole array or a constant. One flat array indexed by `offset + j * H + i`
// stayed in lavapipe's scratch memory, where every += is a gather and a masked scatter per
// invocation: a training step took 1.5x as long (docs/BENCHMARKS.md).
var<private> g_in: array<array<array<f32, 3>, H>, 2>; // W_0[j][0], W_0[j][1], b_0[j]
var<private> g_hid: array<array<array<array<f32, H>, H>, M>, 2>; // W_l[j][i] at [l - 1]
var<private> g_hb: array<array<array<f32, H>, M>, 2>; // b_l[j] at [l - 1]
var<private> g_out: array<array<array<f32, H>, 2>, 2>; // W_out[o][i]
var<private> g_ob: array<array<f32, 2>, 2>; // b_out[o]
var<private> g_scale: array<f32, 2>;

// Floats between two invocations' partial sums: the group's parameters, padded to a multiple of
// 4 (`partials_stride` in src/flow/backward.rs).
fn partials_stride() -> u32 {
    return (lay.step_count * STEP_FLOATS + 3u) / 4u * 4u;
}

// Every accumulator back to zero, before the next step's rows.
fn zero_gradients() {
    g_in = array<array<array<f32, 3>, H>, 2>();
    g_hid = array<array<array<array<f32, H>, H>, M>, 2>();
    g_hb = array<array<array<f32, H>, M>, 2>();
    g_out = array<array<array<f32, H>, 2>, 2>();
    g_ob = array<array<f32, 2>, 2>();
    g_scale = array<f32, 2>();
}

// Writes hidden layer l's partial sums of MLP m (parameters from `base`) to the slot at `at`.
fn write_hidden(at: u32, m: u32, base: u32, l: u32) {
    let w = at + base + 3u * H + (l - 1u) * (H * H + H);
    for (var j = 0u; j < H; j++) {
        for (var i = 0u; i < H; i++) {
            partials[w + j * H + i] = g_hid[m][l - 1u][j][i];
        }
        partials[w + H * H + j] = g_hb[m][l - 1u][j];
    }
}

fn write_mlp(at: u32, m: u32, base: u32) {
    for (var j = 0u; j < H; j++) {
        partials[at + base + 2u * j] = g_in[m][j][0];
        partials[at + base + 2u * j + 1u] = g_in[m][j][1];
        partials[at + base + 2u * H + j] = g_in[m][j][2];
    }
    if M > 1u {
        write_hidden(at, m, base, 1u);
    }
    if M > 2u {
        write_hidden(at, m, base, 2u);
    }
    if M > 3u {
        write_hidden(at, m, base, 3u);
    }
    let o = at + base + mlp_out_offset(H, M);
    for (var r = 0u; r < 2u; r++) {
        for (var i = 0u; i < H; i++) {
            partials[o + r * H + i] = g_out[m][r][i];
        }
        partials[o + 2u * H + r] = g_ob[m][r];
    }
}
#else
// The invocation's four rows: where they sit in `rows` (factor-major, see grad_reduce.wgsl)
// and whether they are real; lanes past the chunk write zero rows, which pad it to a multiple
// of 4.
var<private> first_row4: u32;
var<private> lane_on: vec4<bool>;

// Row factor i of the four rows, when the pass forms parameter gradients (row_stride > 0).
fn put(i: u32, v: vec4<f32>) {
    if lay.row_stride != 0u {
        rows[i * (lay.row_stride / 4u) + first_row4] = select(vec4<f32>(0.0), v, lane_on);
    }
}
#endif

// Layer l's deltas (d loss / d pre-activation) at [l % 2], l a constant at every use: the
// deltas of layer l - 1, formed from layer l's, go to the other half, with no copy (a wide MLP's
// are in scratch memory).
var<private> deltas: array<array<vec4<f32>, H>, 2>;

// Back through hidden layer l >= 1 (constant, as in mlp_forward) of MLP m (0 = s, 1 = t, also
// its slot of `acts`) at `base`: its weights' gradient contributions, then layer l - 1's deltas.
fn hidden_backward(m: u32, base: u32, l: u32, rb: u32) {
    let nh = n_hidden();
    let w = base + 3u * H + (l - 1u) * (H * H + H);
    let p_a = rb + factors_hidden(H, l);
    for (var j = 0u; j < nh; j++) {
#if GA
        for (var i = 0u; i < nh; i++) {
            g_hid[m][l - 1u][j][i] += dot(deltas[l % 2u][j], acts[m][l - 1u][i]);
        }
        g_hb[m][l - 1u][j] += dot(deltas[l % 2u][j], vec4<f32>(1.0));
#else
        put(p_a + j, acts[m][l - 1u][j]);
        put(p_a + H + j, deltas[l % 2u][j]);
#endif
    }
    // The deltas of layer l - 1, in blocks of inputs as hidden_forward's blocks of units.
    let full = nh / HB * HB;
    for (var ib = 0u; ib < full; ib += HB) {
        delta_units(m, w, l, ib, HB);
    }
    if H % HB != 0u {
        delta_units(m, w, l, full, H % HB);
    }
}

// Inputs i0 .. i0 + n - 1 (n <= HB, a constant at every call) of hidden layer l: their deltas
// from layer l's, each delta read once per block; each input's sum runs over the deltas in order.
fn delta_units(m: u32, w: u32, l: u32, i0: u32, n: u32) {
    var acc: array<vec4<f32>, HB>;
    for (var j = 0u; j < n_hidden(); j++) {
        let d = deltas[l % 2u][j];
        for (var ii = 0u; ii < n; ii++) {
            acc[ii] += wt(w + j * H + i0 + ii) * d;
        }
    }
    for (var ii = 0u; ii < n; ii++) {
        deltas[(l - 1u) % 2u][i0 + ii] = acc[ii] * elu_grad(acts[m][l - 1u][i0 + ii]);
    }
}

// Backward through MLP m at `base`, whose activations are in `acts[m]`, from the output gradient
// d_out; writes the row factors at offset `rb` of each row and returns the gradient with respect
// to the input.
fn mlp_backward(m: u32, base: u32, x: Pair, d_out: Pair, rb: u32) -> Pair {
    let nh = n_hidden();
#if GA
#else
    put(rb, x.x);
    put(rb + 1u, x.y);
#endif
    let w_out = base + mlp_out_offset(H, M);
    let p_last = rb + factors_last(H, M);
    for (var i = 0u; i < nh; i++) {
        let a = acts[m][M - 1u][i];
#if GA
        g_out[m][0][i] += dot(d_out.x, a);
        g_out[m][1][i] += dot(d_out.y, a);
#else
        put(p_last + i, a);
#endif
        deltas[(M - 1u) % 2u][i] = (wt(w_out + i) * d_out.x + wt(w_out + H + i) * d_out.y) * elu_grad(a);
    }
#if GA
    g_ob[m][0] += dot(d_out.x, vec4<f32>(1.0));
    g_ob[m][1] += dot(d_out.y, vec4<f32>(1.0));
#else
    put(p_last + H, d_out.x);
    put(p_last + H + 1u, d_out.y);
#endif
    if M > 3u {
        hidden_backward(m, base, 3u, rb);
    }
    if M > 2u {
        hidden_backward(m, base, 2u, rb);
    }
    if M > 1u {
        hidden_backward(m, base, 1u, rb);
    }
    var d_in = Pair(vec4<f32>(0.0), vec4<f32>(0.0));
    for (var j = 0u; j < nh; j++) {
#if GA
        g_in[m][j][0] += dot(deltas[0][j], x.x);
        g_in[m][j][1] += dot(deltas[0][j], x.y);
        g_in[m][j][2] += dot(deltas[0][j], vec4<f32>(1.0));
#else
        put(rb + 2u + j, deltas[0][j]);
#endif
        d_in.x += wt(base + 2u * j) * deltas[0][j];
        d_in.y += wt(base + 2u * j + 1u) * deltas[0][j];
    }
    return d_in;
}

// Carries the four rows from `first` of the chunk (whose rows end at `end`) back through
// coupling step k, and adds their gradient contributions.
fn backward_quad(k: u32, first: u32, end: u32) {
    // Lanes past the chunk repeat its last row; see below for what they contribute.
    var row: array<u32, 4>;
    var v: array<vec4<f32>, 4>;
    var a: array<vec4<f32>, 4>;
    var g: vec4<f32>;
    var on: vec4<bool>;
    for (var r = 0u; r < 4u; r++) {
        let cr = min(first + r, end - 1u);
        row[r] = lay.chunk_start + cr;
        on[r] = first + r < end;
        let at = ((lay.row_offset + row[r]) * lay.couplings + k) * 4u;
        for (var j = 0u; j < 4u; j++) {
            v[j][r] = steps[at + j];
            a[j][r] = adj_rows[row[r] * 4u + j];
        }
        g[r] = gamma[row[r] / lay.n_blocks];
    }
#if GA
    // Zero adjoints: every gradient contribution is linear in them, so such lanes add nothing.
    for (var j = 0u; j < 4u; j++) {
        a[j] = select(vec4<f32>(0.0), a[j], on);
    }
    g = select(vec4<f32>(0.0), g, on);
#else
    // Such lanes write zero factors.
    first_row4 = first / 4u;
    lane_on = on;
#endif
    let m = step_mask(k);
    let keep = Pair(pick(v, m.k0), pick(v, m.k1));
    let ms = mlp_size(H, M);
    let base_s = step_base(k);
    let base_t = base_s + ms + 2u;

    let o = mlp_forward(0u, base_s, keep.x, keep.y);
    let th = Pair(s_tanh(o.x), s_tanh(o.y));
    let scale = s_scale(base_s);
    let s = Pair(scale.x * th.x, scale.y * th.y);
    let t = mlp_forward(1u, base_t, keep.x, keep.y);
    let au = Pair(pick(a, m.u0), pick(a, m.u1));
    let u = Pair(pick(v, m.u0), pick(v, m.u1));
    var ds: Pair;
    var dt: Pair;
    var e: Pair;
    if lay.forward != 0u {
        e = Pair(exp(s.x), exp(s.y));
        ds = Pair(au.x * u.x * e.x + g, au.y * u.y * e.y + g);
        dt = au;
    } else {
        e = Pair(exp(-s.x), exp(-s.y));
        ds = Pair(-au.x * (u.x - t.x) * e.x - g, -au.y * (u.y - t.y) * e.y - g);
        dt = Pair(-au.x * e.x, -au.y * e.y);
    }
    a = place(a, m.u0, au.x * e.x);
    a = place(a, m.u1, au.y * e.y);

    let f_mlp = factors_size(H, M);
    let dk_t = mlp_backward(1u, base_t, keep, dt, f_mlp + 2u);
#if GA
    g_scale[0] += dot(ds.x, th.x);
    g_scale[1] += dot(ds.y, th.y);
#else
    put(f_mlp, ds.x * th.x);
    put(f_mlp + 1u, ds.y * th.y);
#endif
    let d_o = Pair(ds.x * scale.x * (1.0 - th.x * th.x), ds.y * scale.y * (1.0 - th.y * th.y));
    let dk_s = mlp_backward(0u, base_s, keep, d_o, 0u);
    a = place(a, m.k0, pick(a, m.k0) + dk_s.x + dk_t.x);
    a = place(a, m.k1, pick(a, m.k1) + dk_s.y + dk_t.y);
    for (var r = 0u; r < 4u; r++) {
        if on[r] {
            for (var j = 0u; j < 4u; j++) {
                adj_rows[row[r] * 4u + j] = a[j][r];
            }
        }
    }
}

@compute @workgroup_size(WG)
fn coupling_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let inv = linear_id(gid, nwg);
    let end = min(lay.chunk_rows, lay.batch * lay.n_blocks - lay.chunk_start);
    // The reverse of the pass's order: a generation pass applied its steps ascending.
    let ascending = lay.forward == 0u;
#if GA
    let first = 4u * inv * lay.quads;
    if first >= end {
        return;
    }
    for (var i = 0u; i < lay.step_count; i++) {
        let k = group_step(i, ascending);
        zero_gradients();
        for (var q = 0u; q < lay.quads; q++) {
            if first + 4u * q < end {
                backward_quad(k, first + 4u * q, end);
            }
        }
        // Partial sums [invocation][step of the group][parameter of the step], each
        // invocation's padded to whole vec4s for grad_reduce::sum_partials.
        let at = inv * partials_stride() + (k - lay.k) * STEP_FLOATS;
        write_mlp(at, 0u, 0u);
        partials[at + mlp_size(H, M)] = g_scale[0];
        partials[at + mlp_size(H, M) + 1u] = g_scale[1];
        write_mlp(at, 1u, mlp_size(H, M) + 2u);
    }
#else
    let first = 4u * inv;
    if first >= end {
        return;
    }
    for (var i = 0u; i < lay.step_count; i++) {
        backward_quad(group_step(i, ascending), first, end);
    }
#endif
}
