// Shared float helpers. Tests of f32 values on their bits: WGSL lets a compiler assume that no
// NaN or infinity occurs (Metal's fast math does), so `v == v` or a comparison with infinity may
// be folded away; a bit pattern cannot be.
fn is_finite(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u;
}

fn is_negative_infinity(v: f32) -> bool {
    return bitcast<u32>(v) == 0xff800000u;
}

// tanh saturates to +-1 in f32 long before 20; clamping keeps every driver's tanh finite.
fn safe_tanh(v: f32) -> f32 {
    return tanh(clamp(v, -20.0, 20.0));
}
