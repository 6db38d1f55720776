//! Generated flow configurations for the property tests: every architecture, lattices 4 and 8,
//! every legal depth, hidden widths from 1 to 128 (odd ones included), 1 to 4 MLP layers.

use neuralrg_gpu::flow::{params, Arch, FlowConfig, FlowPlan};
use neuralrg_gpu::train::Objective;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

#[derive(Debug, Clone)]
pub struct Case {
    pub lattice: usize,
    pub arch: Arch,
    pub depth: usize,
    pub couplings: usize,
    pub hidden: usize,
    pub mlp_layers: usize,
    pub batch: usize,
    pub seed: u64,
    pub objective: Objective,
}

impl Case {
    pub fn plan(&self) -> FlowPlan {
        FlowPlan::new(
            FlowConfig::new(
                self.lattice,
                Some(self.depth),
                self.arch,
                self.couplings,
                self.hidden,
                self.mlp_layers,
            )
            .expect("generated configurations are valid"),
        )
    }

    /// Initialised, then perturbed away from the identity: scaled with the width and the number
    /// of coupling steps, so that wide MLPs and deep flows move samples by O(1), not by orders
    /// of magnitude that no f32 computation could follow.
    pub fn params(&self, plan: &FlowPlan) -> Vec<f32> {
        let mut p = params::init(plan, self.seed);
        let steps = (plan.layers.len() * self.couplings) as f64;
        let sigma = 0.6 / (self.hidden as f64).sqrt() / (steps / 4.0).max(1.0).sqrt();
        params::perturb(&mut p, sigma, self.seed);
        p
    }
}

/// Every objective: plain, symmetric, regularised, and both together.
pub const OBJECTIVES: [Objective; 4] = [
    Objective::PLAIN,
    Objective {
        symmetric: true,
        sym_reg: 0.0,
    },
    Objective {
        symmetric: false,
        sym_reg: 0.3,
    },
    Objective {
        symmetric: true,
        sym_reg: 0.2,
    },
];

/// MLP shapes (hidden width, hidden layers) the cases draw from: widths 1 to 128 (odd ones,
/// ones that are not multiples of the reduction's 4 x 4 tiles, a wide one whose hidden layer
/// runs in blocks of 8, 8 and 4 units, the widest with a hidden layer of 16 blocks), 1 to 4
/// layers. A fixed list, because every shape is compiled into its own pipelines, which costs
/// seconds each on a CPU adapter (the widest: about 40 s).
pub const SHAPES: [(usize, usize); 12] = [
    (1, 1),
    (1, 4),
    (2, 2),
    (3, 3),
    (5, 2),
    (6, 3),
    (7, 1),
    (8, 2),
    (13, 4),
    (16, 2),
    (20, 2),
    (128, 2),
];

/// Configurations on the given lattices, with MLP shapes drawn from `shapes`; batches of
/// `min_batch..=4` (smaller for the widest MLPs, which cost the most on a CPU adapter).
pub fn cases(
    lattices: Vec<usize>,
    shapes: Vec<(usize, usize)>,
    min_batch: usize,
) -> impl Strategy<Value = Case> {
    (
        prop::sample::select(lattices),
        prop::sample::select(vec![Arch::Mera, Arch::Tree, Arch::Tebd]),
        0usize..64,
        1usize..=4,
        prop::sample::select(shapes),
        min_batch..=4,
        any::<u64>(),
        prop::sample::select(OBJECTIVES.to_vec()),
    )
        .prop_map(
            move |(lattice, arch, d, couplings, (hidden, mlp_layers), batch, seed, objective)| {
                let levels = lattice.trailing_zeros() as usize;
                // tebd may stack up to L layer pairs; three already reach every code path.
                let max_depth = if arch == Arch::Tebd { 3 } else { levels };
                let wide = hidden >= 64;
                Case {
                    lattice,
                    arch,
                    depth: 1 + d % max_depth,
                    couplings: if wide { couplings.min(2) } else { couplings },
                    hidden,
                    mlp_layers,
                    batch: if wide { min_batch } else { batch },
                    seed: seed % 1_000_000,
                    objective,
                }
            },
        )
}

/// Runs `test` on `n` generated cases from a fixed seed (so CI is deterministic); a failure
/// panics with the shrunk case.
pub fn check(
    n: u32,
    strategy: impl Strategy<Value = Case>,
    test: impl Fn(&Case) -> Result<(), TestCaseError>,
) {
    let config = Config {
        cases: n,
        max_shrink_iters: 24,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    if let Err(e) = runner.run(&strategy, |c| test(&c)) {
        panic!("{e}");
    }
}
