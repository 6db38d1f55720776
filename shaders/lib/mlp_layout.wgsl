// Shared by the flow stages: the flat layout of an MLP's parameters (src/flow/params.rs) and of
// the per-row factors flow_backward writes for grad_reduce. Per MLP, the row factors are
//   [input (2) | delta_0 (H) | (act_{l-1} (H), delta_l (H)) for l = 1..m-1 | act_last (H) | delta_out (2)]

// The most hidden layers the flow stages carry: mlp_forward and mlp_backward have one call per
// hidden layer up to this many (flow::plan::MAX_MLP_LAYERS refuses more, tested to match).
const MAX_MLP_LAYERS: u32 = 4u;

// Parameters of one MLP without the s-MLP's tanh scale.
fn mlp_size(h: u32, m: u32) -> u32 {
    return 5u * h + 2u + (m - 1u) * (h * h + h);
}

// Offset of W_out within an MLP.
fn mlp_out_offset(h: u32, m: u32) -> u32 {
    return 3u * h + (m - 1u) * (h * h + h);
}

// Row factors of one MLP.
fn factors_size(h: u32, m: u32) -> u32 {
    return 4u + 2u * h * m;
}

// Offset of (act_{l-1}, delta_l) for hidden layer l >= 1 within an MLP's row factors.
fn factors_hidden(h: u32, l: u32) -> u32 {
    return 2u + h + (l - 1u) * 2u * h;
}

// Offset of (act_last, delta_out) within an MLP's row factors.
fn factors_last(h: u32, m: u32) -> u32 {
    return factors_hidden(h, m);
}
