//! Shared helpers for the integration tests.
#![allow(dead_code)]

pub mod cases;
pub mod enumeration;
pub mod formats;

use std::sync::Arc;

/// A flow trained at L = 4, beta_c with --symmetric (hidden 16, 6 couplings; fixed bytes, so
/// tests that read it need no training first): a proposal good enough for flow Metropolis and
/// reweighting to converge in a test's budget.
pub const TRAINED: &str = "tests/data/l4-trained.safetensors";

use neuralrg_gpu::gpu::{GpuContext, GpuOptions};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::OnceLock;

/// The real adapter; a missing one fails the test with the runtime's own instructions.
pub fn gpu() -> Arc<GpuContext> {
    gpu_with(&GpuOptions::default())
}

/// A context with `opts` (limits lowered to force a code path, say).
pub fn gpu_with(opts: &GpuOptions) -> Arc<GpuContext> {
    // As the binary does: keep Mesa's device-select layer from probing for a display.
    std::env::set_var("NODEVICE_SELECT", "1");
    GpuContext::new(opts).unwrap_or_else(|e| panic!("GPU tests need a GPU adapter: {e}"))
}

/// One context for all the tests of a binary, so each pipeline is compiled once.
pub fn shared_gpu() -> Arc<GpuContext> {
    static CTX: OnceLock<Arc<GpuContext>> = OnceLock::new();
    CTX.get_or_init(gpu).clone()
}

/// `n` standard-normal-ish values (uniform in [-2.5, 2.5]) from a fixed seed.
pub fn random_vec(seed: u64, n: usize, scale: f64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| scale * rng.random_range(-1.0..1.0))
        .collect()
}

/// max |a - b| / max |b|: a relative error that is not fooled by entries near zero.
pub fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-300);
    a.iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

pub fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&a| a as f32).collect()
}

pub fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&a| a as f64).collect()
}

/// The resolved configuration of a small flow (`hidden` wide, `couplings` per bijector) at
/// L = `lattice` and beta_c: what the sampler and analysis tests build models from.
pub fn small_config(
    lattice: usize,
    hidden: usize,
    couplings: usize,
) -> neuralrg_gpu::config::RunConfig {
    use neuralrg_gpu::config::{PartialFlow, PartialRunConfig};
    PartialRunConfig {
        lattice: Some(lattice),
        flow: PartialFlow {
            hidden: Some(hidden),
            couplings: Some(couplings),
            ..PartialFlow::default()
        },
        ..PartialRunConfig::default()
    }
    .resolve()
    .unwrap()
}
