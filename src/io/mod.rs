//! Files: atomic writes, run-directory locks, checkpoints and NumPy `.npz` output.

pub mod atomic;
pub mod checkpoint;
pub mod lock;
pub mod npy;

pub use atomic::write_atomic;
