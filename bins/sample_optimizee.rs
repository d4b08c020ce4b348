//! `sample-optimizee`: draws problem instances and writes a spec.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use l2l::problems::{QuadraticFamily, ValueDistribution};
use l2l::rng::streams;
use std::path::PathBuf;
use std::process::ExitCode;

/// Draw optimizee problems and write them as a spec (.npz that numpy.load opens).
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Args {
    #[command(subcommand)]
    family: Family,
}

#[derive(Subcommand)]
enum Family {
    /// Random quadratics f(θ) = ‖Wθ − y‖² (§3.1). Writes W [n,d,d], y [n,d] and theta0 [n,d] as
    /// float32, plus the family and seed so that meta-train can draw fresh problems like them.
    Quadratic {
        /// Number of problems.
        #[arg(long)]
        count: usize,
        /// Dimension d of θ.
        #[arg(long, default_value_t = 10)]
        dims: usize,
        /// Distribution of the entries of W and y: normal = N(0,1) (the paper), uniform =
        /// U[0,1) (the original TensorFlow code).
        #[arg(long, value_enum, default_value_t = Dist::Normal)]
        dist: Dist,
        /// Standard deviation σ of the iid Gaussian θ0 ~ N(0, σ²).
        #[arg(long = "theta0-std", default_value_t = 1.0)]
        theta0_std: f32,
        /// Seed of every random draw; the same seed gives the same file.
        #[arg(long)]
        seed: u64,
        /// Output spec (.npz).
        #[arg(short, long)]
        output: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Dist {
    Normal,
    Uniform,
}

fn run(args: Args) -> anyhow::Result<()> {
    match args.family {
        Family::Quadratic {
            count,
            dims,
            dist,
            theta0_std,
            seed,
            output,
        } => {
            anyhow::ensure!(count > 0, "--count must be at least 1");
            let family = QuadraticFamily {
                dims,
                distribution: match dist {
                    Dist::Normal => ValueDistribution::Normal,
                    Dist::Uniform => ValueDistribution::Uniform,
                },
                theta0_std,
            };
            family.validate()?;
            let set = family.sample(seed, count, streams::spec_problem);
            set.save(&output)
                .with_context(|| format!("writing {}", output.display()))?;
            eprintln!(
                "sample-optimizee: wrote {count} quadratics of dimension {dims} to {}",
                output.display()
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    l2l::cli::finish("sample-optimizee", run(Args::parse()))
}
