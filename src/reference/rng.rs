//! CPU twin of `shaders/rng.wgsl`: Philox4x32-10 and Box-Muller normals.

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = a as u64 * b as u64;
    ((p >> 32) as u32, p as u32)
}

/// Philox4x32 with 10 rounds.
pub fn philox4x32_10(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let (mut c, mut k) = (ctr, key);
    for _ in 0..10 {
        let (h0, l0) = mulhilo(M0, c[0]);
        let (h1, l1) = mulhilo(M1, c[2]);
        c = [h1 ^ c[1] ^ k[0], l1, h0 ^ c[3] ^ k[1], l0];
        k = [k[0].wrapping_add(W0), k[1].wrapping_add(W1)];
    }
    c
}

/// The counter block `block` of the stream (seed, stream, step): the shader's `philox`.
pub fn block(seed: u64, stream: u32, step: u64, block: u32) -> [u32; 4] {
    philox4x32_10(
        [block, stream, step as u32, (step >> 32) as u32],
        [seed as u32, (seed >> 32) as u32],
    )
}

/// Uniform in (0, 1) exactly as the shader forms it in f32.
pub fn uniform01(a: u32) -> f32 {
    ((a >> 9) as f32 + 0.5) * (1.0 / 8_388_608.0)
}

fn box_muller(a: u32, b: u32) -> [f64; 2] {
    let r = (-2.0 * (uniform01(a) as f64).ln()).sqrt();
    let theta = std::f64::consts::TAU * uniform01(b) as f64;
    [r * theta.cos(), r * theta.sin()]
}

/// The first `n` raw outputs of a stream: the shader's `fill_bits`.
pub fn bits(seed: u64, stream: u32, step: u64, n: usize) -> Vec<u32> {
    (0..n.div_ceil(4) as u32)
        .flat_map(|b| block(seed, stream, step, b))
        .take(n)
        .collect()
}

/// The first `n` normals of a stream in f64: the shader's `fill_normal`.
pub fn normals(seed: u64, stream: u32, step: u64, n: usize) -> Vec<f64> {
    (0..n.div_ceil(4) as u32)
        .flat_map(|b| {
            let r = block(seed, stream, step, b);
            let [z0, z1] = box_muller(r[0], r[1]);
            let [z2, z3] = box_muller(r[2], r[3]);
            [z0, z1, z2, z3]
        })
        .take(n)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn philox_matches_the_random123_known_answers() {
        assert_eq!(
            philox4x32_10([0; 4], [0; 2]),
            [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]
        );
        assert_eq!(
            philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]
        );
        assert_eq!(
            philox4x32_10(
                [0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344],
                [0xa409_3822, 0x299f_31d0]
            ),
            [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1]
        );
    }

    #[test]
    fn uniforms_stay_strictly_inside_the_unit_interval() {
        assert!(uniform01(0) > 0.0);
        assert!(uniform01(u32::MAX) < 1.0);
    }
}
