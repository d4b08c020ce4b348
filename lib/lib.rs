//! l2l: *Learning to learn by gradient descent by gradient descent* (Andrychowicz et al.,
//! NIPS 2016) as a library behind a pipeline of small binaries.
//!
//! - [`problems`]: the optimizees (random quadratics, §3.1).
//! - [`optimizers`]: SGD, NAG, RMSprop and Adam with Torch7 defaults, and the learned rule.
//! - [`lstm`]: the coordinatewise two-layer LSTM (§2.1), its fused forward and BPTT.
//! - [`preprocessing`]: input scaling and Appendix A's log/sign preprocessing.
//! - [`meta_training`]: truncated-BPTT meta-training with early stopping (§2, §3).
//! - [`learned`]: a trained optimizer and its checkpoint file.
//! - [`evaluation`]: learning curves and learning-rate tuning.
//! - [`trajectory`]: the parquet trajectory format.
//! - [`plotting`]: the paper's learning-curve panels.
//!
//! Numbers are f32 in the hot loops; losses are accumulated in f64.

pub mod cli;
pub mod datasets;
pub mod error;
pub mod evaluation;
pub mod io;
pub mod learned;
pub mod lstm;
pub mod meta_training;
pub mod optimizers;
pub mod plotting;
pub mod preprocessing;
pub mod problems;
pub mod rng;
pub mod trajectory;

// Links the BLAS that ndarray's `blas` feature calls (OpenBLAS from the system).
extern crate blas_src;

pub use error::{Error, Result};

extern "C" {
    fn openblas_set_num_threads(num_threads: std::os::raw::c_int);
}

/// Makes OpenBLAS single-threaded: l2l runs one GEMM per block of coordinates on each rayon
/// thread, and a multithreaded BLAS underneath would oversubscribe the cores.
pub fn init_blas_threads(threads: usize) {
    // SAFETY: a plain setter in OpenBLAS, safe to call at any time from any thread.
    unsafe { openblas_set_num_threads(threads.max(1) as std::os::raw::c_int) }
}
