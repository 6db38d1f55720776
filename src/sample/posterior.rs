//! The latents of given physical configurations (Appendix D, eq. D4). A plain model's are
//! z = g^{-1}(x). A symmetrised model's density is q_sym(x) = [q(x) + q(-x)] / 2, so its
//! posterior of the latents given x puts weight q(eta x) / [q(x) + q(-x)] on z = g^{-1}(eta x)
//! for each sign eta = +-1; the paper infers Fig. 4(a)'s latents this way, with the physical
//! variables flipped accordingly. Taken as g^{-1}(x) instead, the configurations of the sign a
//! symmetrised q left out land in its latent tails, and the latents share that sign as
//! information the flow did not leave in them.

use rand::Rng;

use super::{Model, EVAL_BATCH};
use crate::gpu::{GpuContext, GpuError};
use crate::streams;

/// Configurations of pi with their latents under the model's posterior.
pub struct Latents {
    /// The configurations as the posterior oriented them, eta x: [count, N].
    pub x: Vec<f32>,
    /// z = g^{-1}(eta x): [count, N].
    pub z: Vec<f32>,
    /// How many configurations had non-finite latents or densities (a damaged checkpoint or a
    /// broken flow).
    pub non_finite: usize,
}

/// The latents of the configurations `xs` ([count, N]) under `model`'s posterior, the signs
/// drawn from the host stream (seed, `Host::PosteriorSigns`), one uniform per configuration.
pub fn infer_latents(
    ctx: &GpuContext,
    model: &Model,
    xs: &[f32],
    seed: u64,
) -> Result<Latents, GpuError> {
    let n = model.flow.plan.config.n_sites();
    let plus = model.flow.infer_rows(ctx, xs, EVAL_BATCH)?;
    let broken = |z: &[f32], ln_q: f32| !ln_q.is_finite() || z.iter().any(|v| !v.is_finite());
    if !model.symmetric {
        let non_finite = plus
            .z
            .chunks_exact(n)
            .zip(&plus.ln_q)
            .filter(|(z, lq)| broken(z, **lq))
            .count();
        return Ok(Latents {
            x: xs.to_vec(),
            z: plus.z,
            non_finite,
        });
    }
    let negated: Vec<f32> = xs.iter().map(|v| -v).collect();
    let minus = model.flow.infer_rows(ctx, &negated, EVAL_BATCH)?;
    let mut signs = streams::host(seed, streams::Host::PosteriorSigns);
    let mut out = Latents {
        x: Vec::with_capacity(xs.len()),
        z: Vec::with_capacity(xs.len()),
        non_finite: 0,
    };
    for (i, (lq, lq_neg)) in plus.ln_q.iter().zip(&minus.ln_q).enumerate() {
        let p = plus_probability(*lq, *lq_neg);
        let u: f64 = signs.random();
        let rows = i * n..(i + 1) * n;
        let (x, z, ln_q) = if u < p {
            (&xs[rows.clone()], &plus.z[rows], *lq)
        } else {
            (&negated[rows.clone()], &minus.z[rows], *lq_neg)
        };
        if p.is_nan() || broken(z, ln_q) {
            out.non_finite += 1;
        }
        out.x.extend_from_slice(x);
        out.z.extend_from_slice(z);
    }
    Ok(out)
}

/// P(eta = +1 | x) = q(x) / [q(x) + q(-x)] from ln q(x) and ln q(-x), without overflow; NaN
/// where neither is a density.
pub fn plus_probability(ln_q: f32, ln_q_neg: f32) -> f64 {
    1.0 / (1.0 + (ln_q_neg as f64 - ln_q as f64).exp())
}

#[cfg(test)]
mod tests {
    use super::plus_probability;

    #[test]
    fn the_sign_posterior_weighs_the_two_densities() {
        assert_eq!(plus_probability(-3.0, -3.0), 0.5);
        let p = plus_probability(-1.0, -1.0 - 2f32.ln());
        assert!((p - 2.0 / 3.0).abs() < 1e-7, "{p}");
        // Far apart, and where one sign has no density: no overflow.
        assert_eq!(plus_probability(1000.0, 0.0), 1.0);
        assert_eq!(plus_probability(0.0, 1000.0), 0.0);
        assert_eq!(plus_probability(0.0, f32::NEG_INFINITY), 1.0);
        assert_eq!(plus_probability(f32::NEG_INFINITY, 0.0), 0.0);
        assert!(plus_probability(f32::NEG_INFINITY, f32::NEG_INFINITY).is_nan());
        assert!(plus_probability(f32::NAN, 0.0).is_nan());
    }
}
