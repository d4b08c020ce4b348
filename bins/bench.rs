//! `l2l-bench` (`make bench`): how close meta-training and evaluation come to this machine's
//! FLOP limit (`l2l::bench`). Prints a table and writes a parquet file with columns task,
//! measure, value, unit and the machine.

use anyhow::Context;
use clap::Parser;
use l2l::bench::{run, text_table, write_results, BenchSettings, Machine};
use l2l::io::{describe, is_stdio};
use l2l::kernels::isa::KERNEL_ISA;
use l2l::kernels::machine;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// Results table (parquet); `-` writes it to standard output (the text table then goes
    /// to standard error).
    #[arg(short, long, default_value = "out/bench/results.parquet")]
    output: PathBuf,
    /// MNIST data for the MNIST-sized task (the real MLP 784-20-10, 15,910 coordinates);
    /// without it the MLP trains on random images of the same shape.
    #[arg(long)]
    data: Option<PathBuf>,
    /// The neural-art feature network (NEURAL_ART/mobilenet_v1/mobilenet_v1.npz);
    /// without it the neural-art rows are skipped.
    #[arg(long)]
    features: Option<PathBuf>,
    /// Runs evaluated together in the evaluation measurement, as `evaluate` does with a spec.
    #[arg(long = "eval-runs", default_value_t = 8)]
    eval_runs: usize,
    /// Timed repetitions of each measurement (the median is reported).
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// The folder of binaries built with the `mpi` feature (`make mpi`: target/mpi/release):
    /// adds meta-training under `mpirun -np 1` and `-np 2`, one thread per rank, with the
    /// ratio, and checks that both write the same checkpoint. Its scratch files go beside
    /// --output.
    #[arg(long = "mpi-bin")]
    mpi_bin: Option<PathBuf>,
}

fn bench(args: Args) -> anyhow::Result<()> {
    // The default output's folder is made for the user; the output is claimed before the
    // minutes of measuring, so a bad --output fails at once.
    let folder = args
        .output
        .parent()
        .filter(|dir| !is_stdio(&args.output) && !dir.as_os_str().is_empty());
    if let Some(dir) = folder {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the folder {}", dir.display()))?
    }
    let mut inputs = Vec::new();
    inputs.extend(args.data.as_deref().map(|p| ("--data", p)));
    let _claims = l2l::cli::claim_outputs(&[("--output", args.output.as_path())], &inputs)?;
    let settings = BenchSettings {
        mnist: args.data.clone(),
        features: args.features.clone(),
        eval_runs: args.eval_runs,
        repeats: args.repeats,
        mpi: args.mpi_bin.clone().map(|bin| {
            let scratch = folder.map_or_else(|| PathBuf::from("bench-mpi"), |d| d.join("mpi"));
            (bin, scratch)
        }),
    };
    let rows = run(&settings)?;
    let machine = Machine {
        cpu: machine::cpu_model(),
        kernel_isa: KERNEL_ISA.to_string(),
        blas_kernel: machine::blas_kernel(),
    };
    let header = format!(
        "CPU: {} ({}); kernels built for {}; OpenBLAS kernel {} (chosen by {})",
        machine.cpu,
        machine::vector_extensions().join(" "),
        machine.kernel_isa,
        machine.blas_kernel,
        machine::blas_kernel_chooser()
    );
    // The table goes to standard output, unless the parquet results go there.
    let table = text_table(&rows, &header);
    if is_stdio(&args.output) {
        eprint!("{table}");
    } else {
        print!("{table}");
    }
    write_results(&args.output, &rows, &machine)?;
    eprintln!("l2l-bench: wrote {}", describe(&args.output, true));
    Ok(())
}

fn main() -> ExitCode {
    // The sgemm reference runs the kernel the CPU can run best, not a generic fallback.
    if let Err(e) = machine::choose_blas_kernel() {
        eprintln!("l2l-bench: could not choose OpenBLAS's kernel ({e}); it keeps its own");
    }
    match l2l::cli::parse_args::<Args>("l2l-bench") {
        Ok(args) => l2l::cli::finish("l2l-bench", bench(args)),
        Err(code) => code,
    }
}
