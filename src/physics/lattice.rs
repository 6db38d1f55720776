//! The L x L periodic square lattice; site (x, y) is stored at index y * L + x.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The largest lattice any command accepts: 16.8 million sites, whose Ising target spectrum
/// alone takes 270 MB on the host and one sample 67 MB on the device. Larger lattices would
/// exhaust host memory before any check of the adapter's limits could refuse them.
pub const MAX_LATTICE: usize = 4096;

#[derive(Debug, Error, PartialEq)]
pub enum LatticeError {
    #[error("--lattice must be at least 2 (got {0})")]
    TooSmall(usize),
    #[error(
        "--lattice must be at most {MAX_LATTICE} (got {0}): larger lattices do not fit in memory"
    )]
    TooLarge(usize),
}

/// Any lattice a target is defined on (L >= 2) and memory can hold.
pub fn check_lattice(l: usize) -> Result<usize, LatticeError> {
    if l < 2 {
        Err(LatticeError::TooSmall(l))
    } else if l > MAX_LATTICE {
        Err(LatticeError::TooLarge(l))
    } else {
        Ok(l)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lattice {
    pub l: usize,
}

impl Lattice {
    pub fn new(l: usize) -> Self {
        Self { l }
    }

    pub fn n_sites(&self) -> usize {
        self.l * self.l
    }

    /// Index of site (x, y), coordinates taken modulo L.
    pub fn site(&self, x: usize, y: usize) -> usize {
        (y % self.l) * self.l + (x % self.l)
    }

    /// The 2N bonds of the torus: every site bonds to its right and its lower neighbour.
    pub fn bonds(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        (0..self.l).flat_map(move |y| {
            (0..self.l).flat_map(move |x| {
                let i = self.site(x, y);
                [(i, self.site(x + 1, y)), (i, self.site(x, y + 1))]
            })
        })
    }
}
