//! Wolff single-cluster Monte Carlo for the 2D Ising model: the reference sampler that the
//! flow's samples are checked against.
//!
//! Conventions match [`crate::physics::exact`]: J = 1, no field, an L x L torus whose 2N
//! bonds link every site to its right and its lower neighbour (for L = 2 each neighbouring
//! pair is bonded twice), H = -sum_bonds s_i s_j, weight exp(-beta H). Site (x, y) is
//! index y L + x. Cluster updates barely slow down at the critical point, unlike
//! single-spin Metropolis, which is why this is the reference.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::physics::Lattice;

/// Per-sweep measurements of a Wolff run.
#[derive(Debug, Clone, PartialEq)]
pub struct WolffSeries {
    /// m^2 = (sum s / N)^2 per sweep.
    pub m2: Vec<f64>,
    /// |m| = |sum s| / N per sweep.
    pub abs_m: Vec<f64>,
    /// Energy per site e = H / N per sweep.
    pub energy: Vec<f64>,
}

/// The fewest thermalisation sweeps: the cluster count of a measured sweep is taken from the
/// second half, so at least 5 sweeps past the random start (whose clusters are tiny: with 1 or
/// 2 sweeps in all, a measured sweep at L = 256 ran 10-100x the clusters it needed).
pub const CALIBRATION_SWEEPS: usize = 10;

/// `sweeps` measured sweeps after `thermalise` unmeasured ones, from a random start; a sweep is
/// as many single-cluster updates as it takes for the flipped cluster sizes to add up to >= N.
///
/// Only the thermalisation sweeps use that size rule literally. Measuring whenever the
/// running size crosses N would be biased: it stops early right after a large cluster,
/// and large clusters come from ordered states, so ordered states would be over-sampled
/// (at L = 4, beta_c that inflates <m^2> by 14%). Measured sweeps therefore run a fixed
/// number of cluster updates, N over the mean cluster size of the second half of
/// thermalisation, which keeps the size rule on average and the measurements unbiased.
/// At least [`CALIBRATION_SWEEPS`] thermalisation sweeps run, to calibrate that number on a
/// chain past its random start.
///
/// `seed` fixes every random number, so equal arguments give an equal series.
pub fn run(l: usize, beta: f64, sweeps: usize, thermalise: usize, seed: u64) -> WolffSeries {
    debug_assert!(l >= 2, "Wolff needs L >= 2, got {l}");
    debug_assert!(beta > 0.0, "Wolff needs beta > 0, got {beta}");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut sampler = Sampler::new(Lattice::new(l), beta, &mut rng);
    let clusters_per_sweep = sampler.thermalise(thermalise.max(CALIBRATION_SWEEPS), &mut rng);
    let mut series = WolffSeries {
        m2: Vec::with_capacity(sweeps),
        abs_m: Vec::with_capacity(sweeps),
        energy: Vec::with_capacity(sweeps),
    };
    for _ in 0..sweeps {
        for _ in 0..clusters_per_sweep {
            sampler.cluster_update(&mut rng);
        }
        sampler.record(&mut series);
    }
    series
}

/// `count` spin configurations (each N values of +-1, concatenated), `spacing` sweeps apart,
/// after `thermalise` sweeps (at least [`CALIBRATION_SWEEPS`]), sweeps as in [`run`]: nearly
/// independent draws of the Ising model (Wolff's autocorrelation times are about one sweep).
pub fn configurations(
    l: usize,
    beta: f64,
    count: usize,
    spacing: usize,
    thermalise: usize,
    seed: u64,
) -> Vec<i8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut sampler = Sampler::new(Lattice::new(l), beta, &mut rng);
    let clusters_per_sweep = sampler.thermalise(thermalise.max(CALIBRATION_SWEEPS), &mut rng);
    let mut out = Vec::with_capacity(count * l * l);
    for _ in 0..count {
        for _ in 0..spacing.max(1) * clusters_per_sweep {
            sampler.cluster_update(&mut rng);
        }
        out.extend_from_slice(&sampler.spins);
    }
    out
}

/// Spin configuration plus the scratch space of cluster growth, reused across updates so
/// a run allocates only once.
struct Sampler {
    lattice: Lattice,
    spins: Vec<i8>,
    /// Probability of adding an aligned neighbour to the cluster, 1 - exp(-2 beta).
    p_add: f64,
    /// Visited marker: true while a site belongs to the cluster being grown.
    in_cluster: Vec<bool>,
    /// Sites of the current cluster, in the order they joined.
    members: Vec<usize>,
    /// Sites whose neighbours are still to be tried (explicit stack, no recursion).
    stack: Vec<usize>,
}

impl Sampler {
    /// Independent uniformly random spins (the infinite-temperature start).
    fn new(lattice: Lattice, beta: f64, rng: &mut ChaCha8Rng) -> Self {
        let n = lattice.n_sites();
        Self {
            lattice,
            spins: (0..n)
                .map(|_| if rng.random::<bool>() { 1 } else { -1 })
                .collect(),
            // -expm1(-2 beta) keeps full relative precision at small beta.
            p_add: -(-2.0 * beta).exp_m1(),
            in_cluster: vec![false; n],
            members: Vec::with_capacity(n),
            stack: Vec::with_capacity(n),
        }
    }

    /// Runs `sweeps` (>= 1) size-rule sweeps and returns how many cluster updates a measured
    /// sweep takes: N over the mean cluster size of the second half, rounded up. The first
    /// half is left out because clusters grown from the random start are atypically small
    /// below T_c.
    fn thermalise(&mut self, sweeps: usize, rng: &mut ChaCha8Rng) -> usize {
        let (mut clusters, mut flipped) = (0, 0);
        for k in 0..sweeps {
            let (c, f) = self.size_sweep(rng);
            if k >= sweeps / 2 {
                clusters += c;
                flipped += f;
            }
        }
        // flipped >= N > 0: every counted sweep flipped at least N spins.
        (self.spins.len() * clusters).div_ceil(flipped)
    }

    /// Single-cluster updates until the flipped sizes add up to at least N, so that one
    /// sweep touches about as many spins as a Metropolis sweep, whatever the temperature.
    /// Returns (cluster updates, spins flipped).
    fn size_sweep(&mut self, rng: &mut ChaCha8Rng) -> (usize, usize) {
        let n = self.spins.len();
        let (mut clusters, mut flipped) = (0, 0);
        while flipped < n {
            flipped += self.cluster_update(rng);
            clusters += 1;
        }
        (clusters, flipped)
    }

    /// Grows one Wolff cluster from a uniformly random site and flips it; returns its size.
    fn cluster_update(&mut self, rng: &mut ChaCha8Rng) -> usize {
        let seed = rng.random_range(0..self.spins.len());
        self.grow(seed, rng);
        for &i in &self.members {
            self.spins[i] = -self.spins[i];
            self.in_cluster[i] = false;
        }
        self.members.len()
    }

    /// Fills `members` with the cluster of `seed`: every bond to an aligned neighbour not yet
    /// in the cluster is activated with probability p_add. A doubly bonded pair (L = 2) gets
    /// two tries, matching its doubled coupling.
    fn grow(&mut self, seed: usize, rng: &mut ChaCha8Rng) {
        let s0 = self.spins[seed];
        self.members.clear();
        self.join(seed);
        while let Some(i) = self.stack.pop() {
            for j in self.neighbours(i) {
                if self.spins[j] == s0 && !self.in_cluster[j] && rng.random::<f64>() < self.p_add {
                    self.join(j);
                }
            }
        }
        debug_assert!(self.stack.is_empty());
    }

    fn join(&mut self, i: usize) {
        self.in_cluster[i] = true;
        self.members.push(i);
        self.stack.push(i);
    }

    /// Right, left, down and up neighbours of site i on the torus.
    fn neighbours(&self, i: usize) -> [usize; 4] {
        let l = self.lattice.l;
        let (x, y) = (i % l, i / l);
        [
            self.lattice.site(x + 1, y),
            self.lattice.site(x + l - 1, y),
            self.lattice.site(x, y + 1),
            self.lattice.site(x, y + l - 1),
        ]
    }

    /// Appends m^2, |m| and e of the current configuration, computed exactly from integer
    /// sums (O(N), the cost of a sweep anyway).
    fn record(&self, series: &mut WolffSeries) {
        let n = self.spins.len() as f64;
        let m = self.spins.iter().map(|&s| i64::from(s)).sum::<i64>() as f64 / n;
        let h: i64 = -self
            .lattice
            .bonds()
            .map(|(i, j)| i64::from(self.spins[i] * self.spins[j]))
            .sum::<i64>();
        series.m2.push(m * m);
        series.abs_m.push(m.abs());
        series.energy.push(h as f64 / n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::physics::exact::BETA_C;

    /// Exact <m^2>, <|m|>, <e> on the L x L torus by enumerating all 2^N states.
    fn exact(l: usize, beta: f64) -> [f64; 3] {
        let lattice = Lattice::new(l);
        let n = lattice.n_sites();
        let bonds: Vec<(usize, usize)> = lattice.bonds().collect();
        // Shift energies by the ground state, -2N, so the weights stay <= 1.
        let e0 = -2.0 * n as f64;
        let mut acc = [0.0; 4];
        for state in 0u32..1 << n {
            let spin = |i: usize| if state >> i & 1 == 1 { 1i64 } else { -1 };
            let m = (0..n).map(spin).sum::<i64>() as f64 / n as f64;
            let h = -bonds.iter().map(|&(i, j)| spin(i) * spin(j)).sum::<i64>() as f64;
            let w = (-beta * (h - e0)).exp();
            acc[0] += w;
            acc[1] += w * m * m;
            acc[2] += w * m.abs();
            acc[3] += w * h / n as f64;
        }
        [acc[1] / acc[0], acc[2] / acc[0], acc[3] / acc[0]]
    }

    /// Mean and binning error: the spread of `bins` block means, which are close to
    /// independent once a block is much longer than the autocorrelation time.
    fn mean_and_binned_err(x: &[f64], bins: usize) -> (f64, f64) {
        let size = x.len() / bins;
        let means: Vec<f64> = x
            .chunks_exact(size)
            .map(|c| c.iter().sum::<f64>() / size as f64)
            .collect();
        let k = means.len() as f64;
        let mean = means.iter().sum::<f64>() / k;
        let var = means.iter().map(|b| (b - mean).powi(2)).sum::<f64>() / (k - 1.0);
        (mean, (var / k).sqrt())
    }

    fn check_against_exact(l: usize, beta: f64, seed: u64) {
        let exact = exact(l, beta);
        let s = run(l, beta, 20_000, 500, seed);
        let names = ["m^2", "|m|", "e"];
        for ((name, series), want) in names.iter().zip([&s.m2, &s.abs_m, &s.energy]).zip(exact) {
            assert_eq!(series.len(), 20_000);
            let (mean, err) = mean_and_binned_err(series, 50);
            assert!(err > 0.0, "{name}: zero error at L = {l}, beta = {beta}");
            assert!(
                (mean - want).abs() < 4.0 * err,
                "{name} at L = {l}, beta = {beta}: Wolff {mean} +/- {err}, exact {want}"
            );
        }
    }

    #[test]
    fn l4_critical_matches_enumeration() {
        check_against_exact(4, BETA_C, 1);
    }

    #[test]
    fn l4_high_temperature_matches_enumeration() {
        check_against_exact(4, 0.3, 2);
    }

    #[test]
    fn l2_doubled_bonds_match_enumeration() {
        check_against_exact(2, 0.3, 3);
    }

    #[test]
    fn same_seed_same_series() {
        let a = run(8, BETA_C, 200, 20, 42);
        assert_eq!(a, run(8, BETA_C, 200, 20, 42));
        assert_ne!(a, run(8, BETA_C, 200, 20, 43));
    }

    #[test]
    fn the_sweep_is_calibrated_past_the_random_start() {
        // The calibration's cluster count per sweep is near that of a long-equilibrated chain
        // (from the random start's tiny clusters alone it was many times too large).
        for seed in 0..4 {
            let count = |sweeps| {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let mut sampler = Sampler::new(Lattice::new(64), BETA_C, &mut rng);
                sampler.thermalise(sweeps, &mut rng) as f64
            };
            let (calibrated, long) = (count(CALIBRATION_SWEEPS), count(400));
            assert!(
                (0.5..2.0).contains(&(calibrated / long)),
                "seed {seed}: {calibrated} clusters a sweep, {long} after 400 sweeps"
            );
        }
        // Fewer thermalisation sweeps than the calibration needs run the calibration's.
        let calibrated = run(16, BETA_C, 5, CALIBRATION_SWEEPS, 7);
        for thermalise in [0, 1, 2] {
            assert_eq!(
                run(16, BETA_C, 5, thermalise, 7),
                calibrated,
                "{thermalise}"
            );
        }
    }

    #[test]
    fn measurements_are_consistent() {
        let s = run(6, 0.5, 300, 10, 9);
        for (&am, &e) in s.abs_m.iter().zip(&s.energy) {
            // |m| = |M| / N with M a sum of 36 spins: an even multiple of 1 / N.
            assert!((0.0..=1.0).contains(&am));
            let j = am * 36.0;
            assert!(
                (j - j.round()).abs() < 1e-9 && j.round() as i64 % 2 == 0,
                "|m| = {am}"
            );
            // e is in [-2, 2] and a multiple of 4 / N (flipping a spin changes H by a
            // multiple of 4).
            assert!((-2.0..=2.0).contains(&e));
            let k = e * 36.0 / 4.0;
            assert!((k - k.round()).abs() < 1e-9, "e = {e}");
        }
    }
}
