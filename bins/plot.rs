//! `plot`: turns trajectory files into learning-curve figures.

use clap::Parser;
use l2l::plotting::{draw_figure, Panel, DEFAULT_FONT_PATH};
use l2l::trajectory::read_trajectories;
use std::path::PathBuf;
use std::process::ExitCode;

/// Draw the paper's learning-curve panels: the mean loss over problems per optimizer against
/// the step, log y axis, the learned optimizer solid and the baselines dashed, one panel per
/// trajectory file, side by side. Writes OUTPUT (PNG) and the same name with .svg.
#[derive(Parser)]
#[command(version, about, long_about)]
struct Args {
    /// A panel: a trajectory file, optionally with a title as FILE=TITLE. Repeat for more.
    #[arg(long = "panel", required = true)]
    panels: Vec<String>,
    /// Output PNG; the SVG goes beside it.
    #[arg(short, long)]
    output: PathBuf,
    /// TrueType font for the text.
    #[arg(long, default_value = DEFAULT_FONT_PATH)]
    font: PathBuf,
}

fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.output.extension().is_some_and(|e| e == "png"),
        "--output must end in .png (the SVG is written beside it)"
    );
    let mut panels = Vec::new();
    for spec in &args.panels {
        let (file, title) = match spec.split_once('=') {
            Some((f, t)) => (PathBuf::from(f), t.to_string()),
            None => (PathBuf::from(spec), spec.clone()),
        };
        let rows = read_trajectories(&file)?;
        panels.push(Panel::from_rows(&title, &rows)?);
    }
    draw_figure(&panels, &args.output, &args.font)?;
    eprintln!(
        "plot: wrote {} and {}",
        args.output.display(),
        args.output.with_extension("svg").display()
    );
    Ok(())
}

fn main() -> ExitCode {
    l2l::cli::finish("plot", run(Args::parse()))
}
