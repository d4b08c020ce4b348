//! `make bench` (`l2l-bench`): how close meta-training and evaluation come to this machine's
//! FLOP limit, as fractions of the same run's sgemm (docs/performance.md, "Benchmark"). Each
//! group of rows has its own file; [`run`] measures them all, and [`write_results`] writes the
//! table documented in docs/formats.md.

mod across_ranks;
mod architectures;
mod conv;
mod external;
mod lstm_kernel;
mod neural_art;
mod products;
mod throughput;

pub use external::{python_has_numpy, python_interpreter};

use crate::error::Result;
use crate::io::{write_table, Column};
use crate::meta::{MetaTrainConfig, MetaTrainSettings, MetaTrainer, Workspace};
use crate::problems::ProblemSet;
use crate::ranks::OneProcess;
use ndarray::Array2;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One measurement: what was timed, what was measured of it, the value and its unit.
pub struct Row {
    pub task: String,
    pub measure: String,
    pub value: f64,
    pub unit: String,
}

/// The rows measured so far, in the order they are printed.
#[derive(Default)]
pub struct Rows(pub Vec<Row>);

impl Rows {
    pub fn add(&mut self, task: &str, measure: &str, value: f64, unit: &str) {
        self.0.push(Row {
            task: task.into(),
            measure: measure.into(),
            value,
            unit: unit.into(),
        })
    }
}

/// What the bench measures.
pub struct BenchSettings {
    /// MNIST data for the MNIST-sized task; without it the MLP trains on random images of
    /// MNIST's shape (the speed does not depend on the pixels).
    pub mnist: Option<PathBuf>,
    /// MobileNet v1's weights for the neural-art rows; without them those rows are skipped.
    pub features: Option<PathBuf>,
    /// Runs evaluated together, as `evaluate` does with a spec.
    pub eval_runs: usize,
    /// Timed repetitions of each measurement (the median is reported).
    pub repeats: usize,
    /// Binaries built with the `mpi` feature, and a folder for their scratch files: adds
    /// meta-training across the ranks of `mpirun`.
    pub mpi: Option<(PathBuf, PathBuf)>,
}

/// Measures every row. Takes minutes; progress and skipped rows go to standard error.
pub fn run(settings: &BenchSettings) -> Result<Vec<Row>> {
    crate::init_blas_threads(1);
    let mut rows = Rows::default();
    let sgemm = throughput::rows(settings, &mut rows)?;
    let mnist = mnist_settings(1);
    let shape = crate::learned::lstm::LstmShape {
        inputs: mnist.preprocessing.features(),
        hidden: mnist.hidden,
    };
    lstm_kernel::lstm_kernel_rows(shape, sgemm, settings.repeats, &mut rows);
    products::product_rows(settings.repeats, &mut rows);
    architectures::architecture_rows(settings, sgemm, &mut rows)?;
    conv::conv_rows(settings.repeats, sgemm, &mut rows)?;
    match &settings.features {
        Some(path) => neural_art::neural_art_rows(path, settings.repeats, sgemm, &mut rows)?,
        None => eprintln!("l2l-bench: no --features; the neural-art rows are skipped"),
    }
    external::external_rows(settings, &mut rows)?;
    rows.add(
        "process",
        "peak resident memory",
        peak_rss_bytes() / 1048576.0,
        "MiB",
    );
    if let Some((bin, scratch)) = &settings.mpi {
        across_ranks::across_ranks(bin, settings.mnist.as_deref(), scratch, &mut rows)?;
    }
    Ok(rows.0)
}

/// Which machine and which kernels measured the rows.
pub struct Machine {
    pub cpu: String,
    pub kernel_isa: String,
    pub blas_kernel: String,
}

/// The rows as a text table under `header` (which names the machine).
pub fn text_table(rows: &[Row], header: &str) -> String {
    let mut table = format!("{header}\n");
    table += &format!("{:<34} {:<42} {:>12} unit\n", "task", "measure", "value");
    for r in rows {
        table += &format!(
            "{:<34} {:<42} {:>12.4} {}\n",
            r.task, r.measure, r.value, r.unit
        );
    }
    table
}

/// Writes the results table (task, measure, value, unit, and the machine of each row;
/// docs/formats.md).
pub fn write_results(path: &Path, rows: &[Row], machine: &Machine) -> Result<()> {
    let text = |f: fn(&Row) -> &String| Column::Utf8(rows.iter().map(|r| f(r).clone()).collect());
    let same = |s: &String| Column::Utf8(vec![s.clone(); rows.len()]);
    write_table(
        path,
        vec![
            ("task", text(|r| &r.task)),
            ("measure", text(|r| &r.measure)),
            (
                "value",
                Column::Float64(rows.iter().map(|r| Some(r.value)).collect()),
            ),
            ("unit", text(|r| &r.unit)),
            ("cpu", same(&machine.cpu)),
            ("kernel_isa", same(&machine.kernel_isa)),
            ("blas_kernel", same(&machine.blas_kernel)),
        ],
    )
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Median seconds of `f` over `repeats` runs, after one warm-up run.
fn time(repeats: usize, mut f: impl FnMut()) -> f64 {
    f();
    median(
        (0..repeats)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

/// OpenBLAS's sgemm on 1024 × 1024 matrices with `threads` threads, GFLOP/s: the reference
/// every fraction is measured against. Leaves OpenBLAS single-threaded.
fn sgemm_gflops(threads: usize, repeats: usize) -> f64 {
    crate::init_blas_threads(threads);
    let n = 1024;
    let a = Array2::<f32>::from_shape_fn((n, n), |(i, j)| ((i * 7 + j * 3) % 13) as f32 * 0.01);
    let b = a.t().to_owned();
    let mut c = Array2::<f32>::zeros((n, n));
    let secs = time(repeats.max(5), || {
        ndarray::linalg::general_mat_mul(1.0, &a, &b, 0.0, &mut c)
    });
    crate::init_blas_threads(1);
    2.0 * (n as f64).powi(3) / secs / 1e9
}

fn peak_rss_bytes() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb * 1024.0)
        .unwrap_or(f64::NAN)
}

/// The MNIST recipe's shape of training (§3.2): log/sign input, output scale 0.1.
fn mnist_settings(batch: usize) -> MetaTrainSettings {
    MetaTrainSettings {
        preprocessing: crate::learned::Preprocessing::LogSign { p: 10.0 },
        output_scale: 0.1,
        batch,
        epochs: u64::MAX,
        eval_every: 1,
        ..MetaTrainSettings::default()
    }
}

/// Seconds per meta-training epoch on `batch`.
fn epoch_seconds<P: ProblemSet>(cfg: &MetaTrainConfig, batch: &P, repeats: usize) -> Result<f64> {
    let mut trainer = MetaTrainer::new(cfg.clone())?;
    let mut ws = Workspace::new(cfg, batch, &OneProcess)?;
    Ok(time(repeats, || {
        trainer.train_epoch(batch, &mut ws, &OneProcess);
    }))
}
