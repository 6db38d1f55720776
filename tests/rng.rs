//! The device Philox generator against its CPU twin, and the moments of its normals.

mod common;

use neuralrg_gpu::gpu::rng::RngStage;
use neuralrg_gpu::reference::rng;

#[test]
fn device_bits_equal_the_twin_bitwise() {
    let ctx = common::gpu();
    let n = 10_003; // not a multiple of 4: the tail block is partial
    let out = ctx.storage::<u32>("bits", n).unwrap();
    for (seed, stream, step) in [
        (0u64, 0u32, 0u64),
        (0xDEAD_BEEF_1234_5678, 7, (1u64 << 33) + 5),
    ] {
        let mut stage = RngStage::bits(&ctx, &out, seed, stream).unwrap();
        stage.set_step(&ctx, step);
        ctx.submit("bits", &[&stage.dispatch]).unwrap();
        let got = ctx.read(&out).unwrap();
        assert_eq!(
            got,
            rng::bits(seed, stream, step, n),
            "seed {seed} stream {stream} step {step}"
        );
    }
}

#[test]
fn device_normals_match_the_twin() {
    let ctx = common::gpu();
    let n = 4_099;
    let out = ctx.storage::<f32>("normals", n).unwrap();
    let mut stage = RngStage::normals(&ctx, &out, 42, 3).unwrap();
    stage.set_step(&ctx, 11);
    ctx.submit("normals", &[&stage.dispatch]).unwrap();
    let got = ctx.read(&out).unwrap();
    // Whole blocks, so every value has its Box-Muller partner.
    let want = rng::normals(42, 3, 11, n.div_ceil(4) * 4);
    // The uniforms are bitwise equal (test above); only the f32 log/cos/sin differ from f64.
    // Vulkan bounds log's error near 1 only absolutely (2^-21), and r = sqrt(-2 ln u) turns an
    // absolute error e of ln u into e / r of r: allowed on top of the relative error.
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let r = want[i & !1].hypot(want[i | 1]);
        assert!(
            (*g as f64 - w).abs() < 2e-5 * (1.0 + w.abs()) + 2f64.powi(-21) / r,
            "normal {i}: {g} vs {w}"
        );
    }
}

#[test]
fn a_million_device_normals_have_standard_moments() {
    let ctx = common::gpu();
    let n = 1_000_000;
    let out = ctx.storage::<f32>("normals", n).unwrap();
    let stage = RngStage::normals(&ctx, &out, 2018, 0).unwrap();
    ctx.submit("normals", &[&stage.dispatch]).unwrap();
    let z: Vec<f64> = ctx.read(&out).unwrap().iter().map(|&v| v as f64).collect();
    let nf = n as f64;
    let mean = z.iter().sum::<f64>() / nf;
    let m = |k: i32| z.iter().map(|v| (v - mean).powi(k)).sum::<f64>() / nf;
    let (var, m3, m4) = (m(2), m(3), m(4));
    let (skew, kurt) = (m3 / var.powf(1.5), m4 / (var * var));
    // Tolerances are 5 standard errors of each estimator for n = 10^6 (fixed seed: not flaky).
    assert!(mean.abs() < 5.0 * (1.0 / nf).sqrt(), "mean {mean}");
    assert!(
        (var - 1.0).abs() < 5.0 * (2.0 / nf).sqrt(),
        "variance {var}"
    );
    assert!(skew.abs() < 5.0 * (6.0 / nf).sqrt(), "skewness {skew}");
    assert!(
        (kurt - 3.0).abs() < 5.0 * (24.0 / nf).sqrt(),
        "kurtosis {kurt}"
    );
    // Different streams and steps give different numbers.
    let mut other = RngStage::normals(&ctx, &out, 2018, 1).unwrap();
    other.set_step(&ctx, 0);
    ctx.submit("normals", &[&other.dispatch]).unwrap();
    assert_ne!(
        ctx.read(&out).unwrap()[..8],
        z.iter().map(|&v| v as f32).collect::<Vec<_>>()[..8]
    );
}
