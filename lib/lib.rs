//! l2l: *Learning to learn by gradient descent by gradient descent* (Andrychowicz et al.,
//! NIPS 2016) as a library behind a pipeline of small binaries. docs/method.md maps each of
//! the paper's equations to the function that computes it.
//!
//! Layers, bottom to top; a module imports only from its own layer or below:
//! 1. [`error`], [`rng`], [`io`], [`datasets`], [`images`], [`trajectory`], [`proposals`],
//!    [`training_log`], [`ranks`]: errors, seeds, files and the processes of a job.
//! 2. [`kernels`]: the fused LSTM tiles, fast math and GEMM helpers, over slices and views.
//! 3. [`problems`] (the optimizees and their specs) and [`baselines`] (SGD, NAG, RMSprop, Adam).
//! 4. [`learned`]: learned optimizer architectures (the coordinatewise LSTM of §2.1), eq. (1),
//!    and checkpoints.
//! 5. [`meta`] (meta-training, §2 and §3), [`evaluation`] (learning curves and tuning) and
//!    [`inspection`] (Appendix B: the updates proposed inside one trajectory).
//! 6. [`plotting`]: the paper's figures.
//! 7. [`report`] (the results page), [`bench`] (`make bench`) and [`cli`] (what the binaries
//!    share).
//!
//! Numbers are f32 in the hot loops; losses are accumulated in f64.

pub mod baselines;
pub mod bench;
pub mod cli;
pub mod datasets;
pub mod error;
pub mod evaluation;
pub mod images;
pub mod inspection;
pub mod io;
pub mod kernels;
pub mod learned;
pub mod meta;
pub mod plotting;
pub mod problems;
pub mod proposals;
pub mod ranks;
pub mod report;
pub mod rng;
pub mod training_log;
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
