//! `report`: the results page, which of the paper's claims held here and by how much.

use clap::Parser;
use l2l::io::write_atomically;
use l2l::plotting::DEFAULT_FONT_PATH;
use l2l::report::{build, html, markdown, relative_link, Sources};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Write the results page: a claims table (each claim of the paper, §3.1 to §3.4, with every
/// learned optimizer's mean loss, the best tuned baseline's, their paired difference ± standard
/// error over the test runs, and whether the claim held), every figure with its caption and the
/// settings behind it, the tuned learning rates with their grids, the meta-training curves, make
/// bench's table and the environment.
///
/// It reads only --out and --figures; everything is computed from the parquet and npz files
/// there, and a claim whose outputs do not exist yet says "not run" with the make target that
/// writes them. The HTML is one static file with no script that opens from disk; --markdown
/// writes its Markdown twin.
#[derive(Parser)]
#[command(version, about, long_about)]
struct Args {
    /// The pipeline's output folder.
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// The figures folder.
    #[arg(long, default_value = "figures")]
    figures: PathBuf,
    /// The HTML page.
    #[arg(short, long, default_value = "out/report/index.html")]
    output: PathBuf,
    /// Also write the page as Markdown here (e.g. REPORT.md at the repository's root).
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// TrueType font of the inlined meta-training curves.
    #[arg(long, default_value = DEFAULT_FONT_PATH)]
    font: PathBuf,
}

const TITLE: &str = "l2l: the paper's claims, measured";

fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let mut outputs = vec![("--output", args.output.as_path())];
    outputs.extend(args.markdown.as_deref().map(|m| ("--markdown", m)));
    let _claims = l2l::cli::claim_outputs(&outputs, &[])?;
    let sources = Sources {
        out: args.out.clone(),
        figures: args.figures.clone(),
        font: args.font.clone(),
    };
    eprintln!(
        "report: reading {} and {}",
        args.out.display(),
        args.figures.display()
    );
    let blocks = build(&sources)?;
    let page = html(
        TITLE,
        &blocks,
        &relative_link(&args.figures, &folder_of(&args.output)),
    );
    let twin = args
        .markdown
        .as_ref()
        .map(|m| markdown(TITLE, &blocks, &relative_link(&args.figures, &folder_of(m))));
    write_atomically(&args.output, |w| {
        w.write_all(page.as_bytes())
            .map_err(|e| l2l::Error::io(&args.output.display().to_string(), e))
    })?;
    eprintln!("report: wrote {}", args.output.display());
    if let (Some(path), Some(text)) = (&args.markdown, twin) {
        write_atomically(path, |w| {
            w.write_all(text.as_bytes())
                .map_err(|e| l2l::Error::io(&path.display().to_string(), e))
        })?;
        eprintln!("report: wrote {}", path.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    match l2l::cli::parse_args::<Args>("report") {
        Ok(args) => l2l::cli::finish("report", run(args)),
        Err(code) => code,
    }
}
