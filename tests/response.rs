//! The latent response dz_i/dx from the backward stage through the inference pass: the identity
//! flow's is the unit vector of its site (its known linear answer), and a trained-like flow's
//! matches central finite differences of the f64 twin's inference pass.

mod common;

use neuralrg_gpu::flow::{params, FlowPlan};
use neuralrg_gpu::plot::response::latent_response;
use neuralrg_gpu::reference::flow::infer;
use neuralrg_gpu::sample::Model;

const N: usize = 16;

fn config() -> neuralrg_gpu::config::RunConfig {
    common::small_config(4, 3, 2)
}

#[test]
fn the_identity_flow_responds_with_unit_vectors() {
    let ctx = common::gpu();
    let model = Model::init(&ctx, &config(), 0.0).unwrap();
    let xs = common::to_f32(&common::random_vec(1, 5 * N, 1.5));
    let sites = [0, 5, 10];
    let r = latent_response(&ctx, &model, &xs, &sites, 5).unwrap();
    for (k, &s) in sites.iter().enumerate() {
        for (j, v) in r[k].iter().enumerate() {
            let want = if j == s { 1.0 } else { 0.0 };
            assert!((v - want).abs() < 1e-6, "site {s}, x_{j}: {v}");
        }
    }
}

#[test]
fn the_response_matches_finite_differences_of_the_twin() {
    let ctx = common::gpu();
    let config = config();
    let model = Model::init(&ctx, &config, 0.3).unwrap();
    let plan = FlowPlan::new(config.flow_config().unwrap());
    let seed = config.train.seed;
    let mut p = params::init(&plan, seed);
    params::perturb(&mut p, 0.3, seed);
    let (p, masks) = (common::to_f64(&p), params::masks(&plan, seed));
    let samples = 3;
    let xs = common::random_vec(2, samples * N, 1.2);
    let sites = [0, 7];
    let r = latent_response(&ctx, &model, &common::to_f32(&xs), &sites, samples).unwrap();
    // Two configurations per submission, the last padded: the same means, to the bit.
    let pairs = latent_response(&ctx, &model, &common::to_f32(&xs), &sites, 2).unwrap();
    assert_eq!(pairs, r, "in submissions of two");
    let h = 1e-5;
    for (k, &s) in sites.iter().enumerate() {
        let fd: Vec<f64> = (0..N)
            .map(|j| {
                xs.chunks_exact(N)
                    .map(|x| {
                        let (mut a, mut b) = (x.to_vec(), x.to_vec());
                        a[j] += h;
                        b[j] -= h;
                        (infer(&plan, &p, &masks, &a).0[s] - infer(&plan, &p, &masks, &b).0[s])
                            / (2.0 * h)
                    })
                    .sum::<f64>()
                    / samples as f64
            })
            .collect();
        let err = common::rel_err(&r[k], &fd);
        assert!(err < 1e-4, "site {s}: relative error {err}");
    }
}
