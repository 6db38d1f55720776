//! Observables of the Ising spins, measured from configurations x of the continuous relaxation.
//! Given x the spins are independent with E[s_i | x] = tanh x_i (the text after eq. 7), so the
//! improved estimators average the spins out exactly where they can: the uniform structure factor
//! <m^2> = <(sum s)^2> / N^2 as ((sum t)^2 - sum t^2) / N^2 + 1 / N and the energy per site
//! -(1/N) sum over bonds t_i t_j, with t = tanh x; |m| needs the spins themselves, drawn from
//! their conditional distribution.

use rand::Rng;

use crate::gpu::rng::RngStage;
use crate::gpu::WG;
use crate::gpu::{Dispatch, GpuBuffer, GpuContext, GpuError, Shader};
use crate::streams;

/// The observables' names, in the order of [`Observables::values`] (also the CSV columns and
/// the JSON keys).
pub const NAMES: [&str; 3] = ["structure_factor", "energy", "abs_m"];

/// One configuration's estimates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observables {
    /// <m^2>: the uniform structure factor.
    pub structure_factor: f64,
    /// Energy per site of the nearest-neighbour model, H / N with H = -sum_<ij> s_i s_j.
    pub energy: f64,
    /// |sum s| / N.
    pub abs_m: f64,
}

impl Observables {
    pub fn values(&self) -> [f64; 3] {
        [self.structure_factor, self.energy, self.abs_m]
    }
}

/// The estimates of one L x L configuration `x` (row-major); spin i is +1 where `uniforms[i]`
/// is below (1 + tanh x_i) / 2.
pub fn measure(x: &[f32], l: usize, uniforms: &[f32]) -> Observables {
    let n = l * l;
    assert_eq!(x.len(), n, "one configuration of L x L sites");
    assert_eq!(uniforms.len(), n, "one uniform per site");
    let t: Vec<f64> = x.iter().map(|v| (*v as f64).tanh()).collect();
    let sum: f64 = t.iter().sum();
    let sum_sq: f64 = t.iter().map(|v| v * v).sum();
    let nf = n as f64;
    // Each bond once: every site with its right and its lower neighbour (periodic).
    let bonds: f64 = (0..n)
        .map(|i| {
            let (row, col) = (i / l, i % l);
            t[i] * (t[row * l + (col + 1) % l] + t[((row + 1) % l) * l + col])
        })
        .sum();
    let m: f64 = t
        .iter()
        .zip(uniforms)
        .map(|(&ti, &u)| {
            if (u as f64) < 0.5 * (1.0 + ti) {
                1.0
            } else {
                -1.0
            }
        })
        .sum();
    Observables {
        structure_factor: (sum * sum - sum_sq) / (nf * nf) + 1.0 / nf,
        energy: -bonds / nf,
        abs_m: m.abs() / nf,
    }
}

/// Per-chain time series of every observable: `values[k][c][t]` is observable k (in [`NAMES`]
/// order) of chain c at measurement t.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainSeries {
    pub lattice: usize,
    pub values: [Vec<Vec<f64>>; 3],
}

impl ChainSeries {
    pub fn new(lattice: usize, chains: usize) -> Self {
        Self {
            lattice,
            values: std::array::from_fn(|_| vec![Vec::new(); chains]),
        }
    }

    pub fn chains(&self) -> usize {
        self.values[0].len()
    }

    /// Measurements per chain so far.
    pub fn len(&self) -> usize {
        self.values[0].first().map_or(0, Vec::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Measures every chain's configuration in `x` ([chains, N]), drawing the spins with `rng`.
    pub fn push(&mut self, x: &[f32], rng: &mut impl Rng) {
        let n = self.lattice * self.lattice;
        for (c, xc) in x.chunks_exact(n).enumerate() {
            let u: Vec<f32> = (0..n).map(|_| rng.random()).collect();
            let o = measure(xc, self.lattice, &u).values();
            self.push_chain(c, o);
        }
    }

    /// Adds every chain's values measured on the device ([chains, 3], [`NAMES`] order).
    pub fn push_values(&mut self, values: &[f32]) {
        for (c, o) in values.chunks_exact(NAMES.len()).enumerate() {
            self.push_chain(c, [o[0] as f64, o[1] as f64, o[2] as f64]);
        }
    }

    fn push_chain(&mut self, c: usize, values: [f64; 3]) {
        for (k, v) in values.into_iter().enumerate() {
            self.values[k][c].push(v);
        }
    }

    /// Observable `k` ([`NAMES`] order) averaged over the chains, per measurement.
    pub fn chain_average(&self, k: usize) -> Vec<f64> {
        let chains = &self.values[k];
        (0..self.len())
            .map(|t| chains.iter().map(|c| c[t]).sum::<f64>() / chains.len() as f64)
            .collect()
    }

    /// The series as CSV: `t,chain,structure_factor,energy,abs_m`, one row per measurement.
    pub fn to_csv(&self) -> String {
        let mut out = format!("t,chain,{}\n", NAMES.join(","));
        for t in 0..self.len() {
            for c in 0..self.chains() {
                let v: Vec<String> = (0..NAMES.len())
                    .map(|k| self.values[k][c][t].to_string())
                    .collect();
                out.push_str(&format!("{t},{c},{}\n", v.join(",")));
            }
        }
        out
    }
}

/// The observables of a batch of configurations on the device (`shaders/observables.wgsl`), the
/// spins for |m| drawn from the device stream (seed, streams::OBSERVE, step).
pub struct ObservablesStage {
    /// [batch, 3] in [`NAMES`] order.
    pub values: GpuBuffer<f32>,
    rng: RngStage,
    measure: Dispatch,
    _bits: GpuBuffer<u32>,
    _uniform: wgpu::Buffer,
}

impl ObservablesStage {
    pub fn new(
        ctx: &GpuContext,
        x: &GpuBuffer<f32>,
        batch: usize,
        lattice: usize,
        seed: u64,
    ) -> Result<Self, GpuError> {
        let n = lattice * lattice;
        assert_eq!(x.len, batch * n, "x must hold batch x N values");
        ctx.check_loops(
            "observables::measure",
            (n as u64).div_ceil(WG as u64) + WG.ilog2() as u64,
            "use a smaller --lattice",
        )?;
        let bits = ctx.storage::<u32>("observables uniforms", batch * n)?;
        let values = ctx.storage::<f32>("observables", batch * NAMES.len())?;
        let uniform = ctx.uniform("observables", &[batch as u32, lattice as u32, 0, 0])?;
        let kernel = ctx.kernel(Shader::Observables, "measure", &[("WG", WG as f64)])?;
        let measure = ctx.dispatch(
            &kernel,
            &[
                (0, &uniform),
                (1, &x.buffer),
                (2, &bits.buffer),
                (3, &values.buffer),
            ],
            ctx.grid(batch as u64, 1),
        )?;
        Ok(Self {
            values,
            rng: RngStage::bits(ctx, &bits, seed, streams::OBSERVE)?,
            measure,
            _bits: bits,
            _uniform: uniform,
        })
    }

    /// The dispatches of measurement `step`.
    pub fn dispatches(&mut self, ctx: &GpuContext, step: u64) -> [&Dispatch; 2] {
        self.rng.set_step(ctx, step);
        [&self.rng.dispatch, &self.measure]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// Saturated x (|x| large, tanh = +-1) are spins themselves: every estimator is exact.
    #[test]
    fn spin_configurations_give_their_own_values() {
        let l = 4;
        let u = [0.5f32; 16];
        let up = vec![30.0f32; 16];
        let o = measure(&up, l, &u);
        assert!((o.structure_factor - 1.0).abs() < 1e-12);
        assert!((o.energy + 2.0).abs() < 1e-12);
        assert_eq!(o.abs_m, 1.0);
        // Checkerboard: antiferromagnetic, m = 0, e = +2.
        let checker: Vec<f32> = (0..16)
            .map(|i| {
                if (i / 4 + i % 4) % 2 == 0 {
                    30.0
                } else {
                    -30.0
                }
            })
            .collect();
        let o = measure(&checker, l, &u);
        assert!(o.structure_factor.abs() < 1e-12 && (o.energy - 2.0).abs() < 1e-12);
        assert_eq!(o.abs_m, 0.0);
    }

    /// x = 0: independent fair spins, <m^2> = 1/N exactly, no energy.
    #[test]
    fn zero_field_is_independent_spins() {
        let o = measure(&[0.0; 64], 8, &[0.25; 64]);
        assert!((o.structure_factor - 1.0 / 64.0).abs() < 1e-15);
        assert_eq!(o.energy, 0.0);
    }

    #[test]
    fn series_collect_per_chain_and_write_csv() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut s = ChainSeries::new(4, 2);
        let x: Vec<f32> = (0..32).map(|i| (i as f32 - 16.0) / 8.0).collect();
        s.push(&x, &mut rng);
        s.push(&x, &mut rng);
        assert_eq!((s.chains(), s.len()), (2, 2));
        let csv = s.to_csv();
        assert_eq!(csv.lines().count(), 5);
        assert!(csv.starts_with("t,chain,structure_factor,energy,abs_m\n0,0,"));
    }
}
