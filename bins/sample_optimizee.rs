//! `sample-optimizee`: draws problem instances and writes a spec. Each family's subcommand
//! and draw live in the library (`problems::sampling`, one registry line per family).

use anyhow::Context;
use clap::Parser;
use l2l::io::describe;
use l2l::problems::SpecSampler;
use std::path::Path;
use std::process::ExitCode;

/// Draw optimizee problems and write them as a spec (.npz that numpy.load opens).
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Args {
    #[command(subcommand)]
    family: SpecSampler,
}

fn run(args: Args) -> anyhow::Result<()> {
    let sampler = args.family;
    let output = sampler.draw().output.clone();
    let inputs: Vec<(String, &Path)> = (sampler.inputs().into_iter())
        .map(|(setting, path)| (l2l::cli::flag(setting), path))
        .collect();
    let inputs: Vec<(&str, &Path)> = inputs.iter().map(|(f, p)| (f.as_str(), *p)).collect();
    let _claims = l2l::cli::claim_outputs(&[("--output", output.as_path())], &inputs)?;
    let (spec, what) = sampler.sample()?;
    spec.save(&output)
        .with_context(|| format!("writing {}", describe(&output, true)))?;
    eprintln!(
        "sample-optimizee: wrote {what} to {}",
        describe(&output, true)
    );
    Ok(())
}

fn main() -> ExitCode {
    match l2l::cli::parse_args::<Args>("sample-optimizee") {
        Ok(args) => l2l::cli::finish("sample-optimizee", run(args)),
        Err(code) => code,
    }
}
