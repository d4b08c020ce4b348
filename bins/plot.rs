//! `plot`: turns trajectory files into learning-curve figures.

use clap::Parser;
use l2l::io::is_stdio;
use l2l::io::{write_table, Column};
use l2l::plotting::{
    draw_figure, draw_probe, draw_sweep, Measure, Panel, ProbeView, SweepCell, DEFAULT_FONT_PATH,
};
use l2l::proposals::read_proposals;
use l2l::trajectory::read_trajectories;
use std::path::PathBuf;
use std::process::ExitCode;

/// What `--measure` draws.
#[derive(Clone, Copy, clap::ValueEnum)]
enum MeasureArg {
    Loss,
    TestLoss,
}

/// Draw the paper's learning-curve panels: the mean loss over problems per optimizer against
/// the step, log y axis, the learned optimizer solid and the baselines dashed, one panel per
/// trajectory file, side by side. Writes OUTPUT (PNG) and the same name with .svg.
///
/// With --cell instead of --panel it draws Figure 6: the final loss of the learned optimizer
/// and of the best tuned baseline against hidden units, one panel per layer count.
///
/// With --probe it draws Appendix B's figures from a proposal table (evaluate --probe-output):
/// Figure 10, the update each optimizer proposes along the trajectory, or with --sweep-step
/// Figures 11-13, the update each would propose at that step against the gradient; one panel
/// per probed coordinate.
#[derive(Parser)]
#[command(version, about, long_about)]
struct Args {
    /// A panel: a trajectory file, optionally with a title as FILE=TITLE. Repeat for more.
    /// Several files joined by commas (FILE,FILE=TITLE) make one panel, e.g. learned
    /// optimizers and tuned baselines evaluated apart. One FILE may be `-`, standard input.
    #[arg(
        long = "panel",
        required_unless_present_any = ["cells", "probe"],
        allow_hyphen_values = true
    )]
    panels: Vec<String>,
    /// A cell of an architecture sweep (Figure 6): FILE=LAYERS,UNITS. Repeat for every cell.
    #[arg(long = "cell", conflicts_with = "panels", allow_hyphen_values = true)]
    cells: Vec<String>,
    /// A proposal table (evaluate --probe-output) to draw instead of panels (Appendix B).
    #[arg(long, conflicts_with_all = ["panels", "cells"])]
    probe: Option<PathBuf>,
    /// With --probe: draw the sweep at this step (Figures 11-13) instead of the trajectory
    /// (Figure 10).
    #[arg(long = "sweep-step", requires = "probe")]
    sweep_step: Option<usize>,
    /// With --cell: the architecture the optimizer was trained on, LAYERS,UNITS (circled).
    #[arg(long = "trained-on", default_value = "1,20")]
    trained_on: String,
    /// With --cell: also write the cells as a parquet table, one row per cell and learned
    /// optimizer (layers, units, learned, lstm_final_loss, best_baseline, best_baseline_lr,
    /// best_baseline_final_loss).
    #[arg(long)]
    table: Option<PathBuf>,
    /// Output PNG; the SVG goes beside it. `-` writes the PNG alone to standard output.
    #[arg(short, long)]
    output: PathBuf,
    /// What the panels draw: the training loss at every step, or the loss on held-out data
    /// where it was measured (trajectory format 2, e.g. CIFAR-10's test images).
    #[arg(long, value_enum, default_value = "loss")]
    measure: MeasureArg,
    /// TrueType font for the text.
    #[arg(long, default_value = DEFAULT_FONT_PATH)]
    font: PathBuf,
}

fn run(args: Args) -> anyhow::Result<()> {
    let to_stdout = is_stdio(&args.output);
    anyhow::ensure!(
        to_stdout || args.output.extension().is_some_and(|e| e == "png"),
        "--output must end in .png (the SVG is written beside it), or be - for standard output"
    );
    let files: Vec<PathBuf> = args
        .panels
        .iter()
        .flat_map(|spec| panel_files(spec))
        .chain(args.probe.clone())
        .chain(
            args.cells
                .iter()
                .map(|spec| PathBuf::from(spec.split_once('=').map_or(spec.as_str(), |(f, _)| f))),
        )
        .collect();
    let mut inputs: Vec<(&str, &std::path::Path)> = files
        .iter()
        .map(|f| ("a trajectory file", f.as_path()))
        .collect();
    inputs.push(("--font", args.font.as_path()));
    let svg = args.output.with_extension("svg");
    let mut outputs: Vec<(&str, &std::path::Path)> = vec![("--output", args.output.as_path())];
    if !to_stdout {
        outputs.push(("the SVG beside --output", svg.as_path()));
    }
    outputs.extend(args.table.as_deref().map(|p| ("--table", p)));
    let _claims = l2l::cli::claim_outputs(&outputs, &inputs)?;
    if !args.cells.is_empty() {
        return sweep(&args);
    }
    if let Some(path) = &args.probe {
        let rows = read_proposals(path)?;
        let view = args
            .sweep_step
            .map_or(ProbeView::Trajectory, ProbeView::Sweep);
        draw_probe(&rows, view, &args.output, &args.font)?;
        report_written(&args.output);
        return Ok(());
    }
    let measure = match args.measure {
        MeasureArg::Loss => Measure::Loss,
        MeasureArg::TestLoss => Measure::TestLoss,
    };
    let mut panels = Vec::new();
    for spec in &args.panels {
        let title = spec.split_once('=').map_or(spec.as_str(), |(_, t)| t);
        let mut rows = Vec::new();
        for file in panel_files(spec) {
            rows.extend(read_trajectories(&file)?);
        }
        panels.push(Panel::of_measure(title, &rows, measure)?);
    }
    draw_figure(&panels, &args.output, &args.font)?;
    report_written(&args.output);
    Ok(())
}

/// The trajectory files of a --panel FILE[,FILE…][=TITLE].
fn panel_files(spec: &str) -> Vec<PathBuf> {
    let files = spec.split_once('=').map_or(spec, |(f, _)| f);
    files.split(',').map(PathBuf::from).collect()
}

fn report_written(png: &std::path::Path) {
    if is_stdio(png) {
        eprintln!("plot: wrote the PNG to standard output");
    } else {
        eprintln!(
            "plot: wrote {} and {}",
            png.display(),
            png.with_extension("svg").display()
        );
    }
}

fn pair(text: &str, what: &str) -> anyhow::Result<(usize, usize)> {
    let parsed = text
        .split_once(',')
        .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)));
    parsed.ok_or_else(|| anyhow::anyhow!("{what} '{text}' should be LAYERS,UNITS"))
}

fn sweep(args: &Args) -> anyhow::Result<()> {
    let mut cells = Vec::new();
    for spec in &args.cells {
        let (file, at) = spec
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--cell '{spec}' should be FILE=LAYERS,UNITS"))?;
        let (layers, units) = pair(at, "--cell")?;
        cells.push(SweepCell::from_rows(
            layers,
            units,
            &read_trajectories(&PathBuf::from(file))?,
        )?);
    }
    cells.sort_by_key(|c| (c.layers, c.units));
    draw_sweep(
        &cells,
        pair(&args.trained_on, "--trained-on")?,
        &args.output,
        &args.font,
    )?;
    if let Some(path) = &args.table {
        // One row per cell and learned optimizer.
        let rows: Vec<(&SweepCell, &(String, f64))> = cells
            .iter()
            .flat_map(|c| c.learned.iter().map(move |l| (c, l)))
            .collect();
        let ints = |f: &dyn Fn(&SweepCell) -> usize| {
            Column::Int64(rows.iter().map(|(c, _)| f(c) as i64).collect())
        };
        write_table(
            path,
            vec![
                ("layers", ints(&|c| c.layers)),
                ("units", ints(&|c| c.units)),
                (
                    "learned",
                    Column::Utf8(rows.iter().map(|(_, l)| l.0.clone()).collect()),
                ),
                (
                    "lstm_final_loss",
                    Column::Float64(rows.iter().map(|(_, l)| Some(l.1)).collect()),
                ),
                (
                    "best_baseline",
                    Column::Utf8(rows.iter().map(|(c, _)| c.best_baseline.clone()).collect()),
                ),
                (
                    "best_baseline_lr",
                    Column::Float64(rows.iter().map(|(c, _)| c.best_baseline_lr).collect()),
                ),
                (
                    "best_baseline_final_loss",
                    Column::Float64(
                        rows.iter()
                            .map(|(c, _)| Some(c.best_baseline_final))
                            .collect(),
                    ),
                ),
            ],
        )?;
    }
    for c in &cells {
        let learned: Vec<String> = c
            .learned
            .iter()
            .map(|(n, v)| format!("{n} {v:.4}"))
            .collect();
        eprintln!(
            "plot: {} × {:>2}: {}  best baseline {} {:.4}",
            c.layers,
            c.units,
            learned.join("  "),
            c.best_baseline,
            c.best_baseline_final
        );
    }
    report_written(&args.output);
    Ok(())
}

fn main() -> ExitCode {
    match l2l::cli::parse_args::<Args>("plot") {
        Ok(args) => l2l::cli::finish("plot", run(args)),
        Err(code) => code,
    }
}
