//! Every random stream of the program, in one place. A run's seed fixes all of them: the device
//! draws with Philox4x32-10 keyed by (seed, stream, step, index) (`shaders/rng.wgsl`), the host
//! with ChaCha8 seeded from the seed and a fixed salt per use. Two uses never share a stream.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Device stream of the training latent draws (step = the training step).
pub const TRAIN: u32 = 0;
/// Device stream of the latent draws for sampling and evaluation (step = the batch index).
pub const SAMPLE: u32 = 1;
/// Device stream of the HMC chains' starting points (step 0).
pub const HMC_START: u32 = 2;
/// Device stream of the HMC momenta (step = the trajectory).
pub const HMC_MOMENTA: u32 = 3;
/// Device stream of the HMC accept/reject uniforms (step = the trajectory).
pub const HMC_ACCEPT: u32 = 4;
/// Device stream of the spins drawn for |m| (step = the measurement).
pub const OBSERVE: u32 = 5;

/// The host's uses of randomness.
#[derive(Debug, Clone, Copy)]
pub enum Host {
    /// Initial parameters (He-normal weights).
    Init,
    /// The coupling masks.
    Masks,
    /// The noise added to every parameter of a fresh flow (`sample --init --perturb`, and
    /// `bench`, which times a perturbed identity flow).
    Perturb,
    /// q_sym sampling: the sign flips of batch `step`.
    SignFlips { step: u64 },
    /// Ising spins drawn given x, for |m| (one generator per sampler run).
    Spins,
    /// Flow Metropolis: the accept/reject uniforms.
    Metropolis,
    /// Exact samples of pi: the Gaussian noise of x given the spins.
    ExactNoise,
    /// Exact samples of pi: the seed of their Wolff chain.
    Wolff,
    /// The samplers' reference (`reference`, `hmc --compare`): the seed of its Wolff chain.
    WolffReference,
    /// The signs eta of a symmetrised model's posterior of the latents (`analyze`).
    PosteriorSigns,
}

/// The host generator of `use_` under `seed`.
pub fn host(seed: u64, use_: Host) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(match use_ {
        Host::Init => seed,
        Host::Masks => seed ^ 0x6d61_736b,   // "mask"
        Host::Perturb => seed ^ 0x7065_7274, // "pert"
        Host::SignFlips { step } => seed ^ step.rotate_left(32) ^ 0x666c_6970, // "flip"
        Host::Spins => seed ^ 0x7370_696e,   // "spin"
        Host::Metropolis => seed ^ 0x6d65_7472, // "metr"
        Host::ExactNoise => seed ^ 0x6e6f_6973, // "nois"
        Host::Wolff => seed ^ 0x776f_6c66,   // "wolf"
        Host::WolffReference => seed ^ 0x7265_6677, // "refw"
        Host::PosteriorSigns => seed ^ 0x7369_676e, // "sign"
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn every_host_use_draws_its_own_stream() {
        let uses = [
            Host::Init,
            Host::Masks,
            Host::Perturb,
            Host::SignFlips { step: 0 },
            Host::SignFlips { step: 1 },
            Host::Spins,
            Host::Metropolis,
            Host::ExactNoise,
            Host::Wolff,
            Host::WolffReference,
            Host::PosteriorSigns,
        ];
        for seed in [0, 1, 12345] {
            let mut first: Vec<u64> = uses.iter().map(|u| host(seed, *u).random()).collect();
            first.sort_unstable();
            first.dedup();
            assert_eq!(
                first.len(),
                uses.len(),
                "seed {seed}: two uses share a stream"
            );
        }
    }
}
