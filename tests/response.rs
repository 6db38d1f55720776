//! The latent response dz_i/dx from the backward stage through the inference pass: the identity
//! flow's is the unit vector of its site (its known linear answer), and a trained-like flow's
//! matches central finite differences of the f64 twin's inference pass. And the latents the
//! analyses take: under a symmetrised model's sign posterior (Appendix D), as they are under a
//! plain one.

mod common;

use std::path::Path;

use neuralrg_gpu::flow::{params, FlowPlan};
use neuralrg_gpu::io::checkpoint::Checkpoint;
use neuralrg_gpu::plot::response::latent_response;
use neuralrg_gpu::reference::flow::infer;
use neuralrg_gpu::sample::posterior::infer_latents;
use neuralrg_gpu::sample::{exact, Model};

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

/// Mean of z^2 over every latent of `zs`: 1 for latents distributed as the prior.
fn mean_square(zs: &[f32]) -> f64 {
    zs.iter().map(|z| (*z as f64).powi(2)).sum::<f64>() / zs.len() as f64
}

#[test]
fn the_sign_posterior_turns_configurations_to_the_sign_q_learned() {
    let ctx = common::gpu();
    // Trained with --symmetric: its q put nearly all its mass on one sign of the magnetisation.
    let ck = Checkpoint::load(Path::new(common::TRAINED)).unwrap();
    let model = Model::from_checkpoint(&ctx, &ck).unwrap();
    assert!(model.symmetric);
    let count = 2000;
    let xs = exact::draw(&model.target, count, 5);
    let latents = infer_latents(&ctx, &model, &xs, 5).unwrap();
    assert_eq!(latents.non_finite, 0);
    let positive = |v: &[f32]| {
        let m = v.chunks_exact(N).filter(|x| x.iter().sum::<f32>() > 0.0);
        m.count() as f64 / count as f64
    };
    // pi is symmetric: about half its configurations have each sign.
    let (before, after) = (positive(&xs), positive(&latents.x));
    assert!((0.45..0.55).contains(&before), "pi: {before} positive");
    assert!(!(0.05..0.95).contains(&after), "oriented: {after} positive");
    // Each configuration is x or -x, with the latents of what it is.
    let negated: Vec<f32> = xs.iter().map(|v| -v).collect();
    let plus = model.flow.infer_rows(&ctx, &xs, 256).unwrap().z;
    let minus = model.flow.infer_rows(&ctx, &negated, 256).unwrap().z;
    for i in 0..count {
        let r = i * N..(i + 1) * N;
        let (x, z) = (&latents.x[r.clone()], &latents.z[r.clone()]);
        assert!(
            (x == &xs[r.clone()] && z == &plus[r.clone()])
                || (x == &negated[r.clone()] && z == &minus[r]),
            "configuration {i}"
        );
    }
    // Inferred as they are, the configurations of the other sign land in the latents' tails;
    // oriented, the latents are about as wide as the prior.
    let (oriented, as_drawn) = (mean_square(&latents.z), mean_square(&plus));
    eprintln!("mean z^2: oriented {oriented}, as drawn {as_drawn}");
    assert!(oriented < 1.25, "oriented: mean z^2 {oriented}");
    assert!(as_drawn > 1.5, "as drawn: mean z^2 {as_drawn}");
}

#[test]
fn a_plain_model_infers_the_configurations_as_they_are() {
    let ctx = common::gpu();
    let ck = Checkpoint::load(Path::new(common::TRAINED)).unwrap();
    let mut model = Model::from_checkpoint(&ctx, &ck).unwrap();
    model.symmetric = false;
    let xs = exact::draw(&model.target, 300, 6);
    let latents = infer_latents(&ctx, &model, &xs, 6).unwrap();
    assert_eq!(latents.x, xs);
    assert_eq!(latents.z, model.flow.infer_rows(&ctx, &xs, 64).unwrap().z);
    assert_eq!(latents.non_finite, 0);
}
