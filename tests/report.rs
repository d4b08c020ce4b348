//! `report`: the results page from a real (tiny) pipeline's outputs, an empty output folder,
//! a corrupt input, and the page rendered in headless Chromium where it is installed.

use crate::common::*;
use l2l::report::mean_and_se;
use l2l::trajectory::read_trajectories;
use std::path::{Path, PathBuf};
use std::process::Command;

/// out/quadratic as `make figure4` lays it out, from the tiny quadratic pipeline.
fn quadratic_outputs(d: &Dir) {
    specs(d);
    std::fs::create_dir_all(d.path("out/quadratic")).unwrap();
    std::fs::create_dir_all(d.path("out/report")).unwrap();
    std::fs::create_dir_all(d.path("figures")).unwrap();
    train(d, "out/quadratic/optimizer.npz");
    evaluate_tuned(d, "lstm:out/quadratic/optimizer.npz,sgd,adam", "t.parquet");
    std::fs::rename(
        d.path("t.parquet"),
        d.path("out/quadratic/trajectories.parquet"),
    )
    .unwrap();
    std::fs::rename(
        d.path("tuning.parquet"),
        d.path("out/quadratic/tuning.parquet"),
    )
    .unwrap();
}

fn report(d: &Dir) -> (String, String) {
    d.ok(
        "report",
        &[
            "--out",
            "out",
            "--figures",
            "figures",
            "-o",
            "out/report/index.html",
            "--markdown",
            "REPORT.md",
        ],
    );
    (
        std::fs::read_to_string(d.path("out/report/index.html")).unwrap(),
        std::fs::read_to_string(d.path("REPORT.md")).unwrap(),
    )
}

/// The claims table's rows in the Markdown twin, as cells.
fn claim_rows(markdown: &str) -> Vec<Vec<String>> {
    let table = markdown
        .split("## The paper's claims")
        .nth(1)
        .unwrap()
        .split("\n## ")
        .next()
        .unwrap();
    table
        .lines()
        .filter(|l| l.starts_with("| §"))
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

/// The LSTM's mean at the last step, the best baseline's, and their paired difference ± SE,
/// from the trajectories as the test reads them.
fn expected_quadratic_cells(path: &Path) -> [String; 3] {
    let rows = read_trajectories(path).unwrap();
    let last = rows.iter().map(|r| r.step).max().unwrap();
    let at = |name: &str| -> Vec<f64> {
        let mut v: Vec<(i64, f64)> = rows
            .iter()
            .filter(|r| r.optimizer == name && r.step == last)
            .map(|r| (r.problem, r.loss))
            .collect();
        v.sort_by_key(|p| p.0);
        v.into_iter().map(|p| p.1).collect()
    };
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let lstm = at("lstm");
    let best = ["sgd", "adam"]
        .into_iter()
        .map(at)
        .min_by(|a, b| mean(a).total_cmp(&mean(b)))
        .unwrap();
    let d: Vec<f64> = lstm.iter().zip(&best).map(|(a, b)| a - b).collect();
    let (m, se) = mean_and_se(&d);
    let fmt = |x: f64| {
        if x.abs() >= 100.0 {
            format!("{x:.1}")
        } else if x.abs() >= 10.0 {
            format!("{x:.2}")
        } else {
            format!("{x:.4}")
        }
    };
    let digits = if m.abs().max(se) >= 100.0 {
        1
    } else if m.abs().max(se) >= 10.0 {
        2
    } else {
        4
    };
    [
        fmt(mean(&lstm)),
        fmt(mean(&best)),
        format!("{m:.digits$} ± {se:.digits$}"),
    ]
}

#[test]
fn with_no_outputs_every_claim_is_not_run() {
    let d = Dir::new();
    std::fs::create_dir_all(d.path("out/report")).unwrap();
    let (html, md) = report(&d);
    let rows = claim_rows(&md);
    assert!(rows.len() >= 10, "{md}");
    for r in &rows {
        assert_eq!(r[2], "not run", "{r:?}");
        assert!(r[3].starts_with("make figure"), "{r:?}");
    }
    assert!(html.contains("<table id=\"claims\">") && !html.contains("<script"));
    assert!(md.contains("Not run: make bench."));
}

#[test]
fn claims_are_computed_from_the_trajectories() {
    let d = Dir::new();
    quadratic_outputs(&d);
    let (html, md) = report(&d);
    let rows = claim_rows(&md);
    let quad: Vec<&Vec<String>> = rows.iter().filter(|r| r[0].contains("§3.1")).collect();
    assert_eq!(quad.len(), 1, "{md}");
    let [lstm, best, diff] =
        expected_quadratic_cells(&d.path("out/quadratic/trajectories.parquet"));
    let q = quad[0];
    assert_eq!(q[2], "LSTM");
    assert_eq!(q[3], "quadratic/trajectories.parquet");
    assert_eq!((&q[5], &q[7], &q[8]), (&lstm, &best, &diff), "{q:?}");
    assert_eq!((q[9].as_str(), q[10].as_str()), ("6", "1"));
    // The verdict follows the paired difference and two standard errors: never ✓ for a tie.
    let (m, se) = diff.split_once(" ± ").unwrap();
    let (m, se): (f64, f64) = (m.parse().unwrap(), se.parse().unwrap());
    let want = if m < -2.0 * se {
        "✓"
    } else if m.abs() <= 2.0 * se {
        "not distinguishable (within 2 SE)"
    } else {
        "✗"
    };
    assert_eq!(q[12], want, "{q:?}");
    // Every other claim has no outputs here.
    assert!(rows.iter().filter(|r| r[2] == "not run").count() == rows.len() - 1);
    // The tuning grid and the meta-training curve (inlined in the HTML only).
    assert!(md.contains("| quadratic/tuning.parquet | SGD |"), "{md}");
    assert!(md.contains("| quadratic/optimizer.npz | 4 |"), "{md}");
    assert!(html.contains("<svg") && !html.contains("<?xml"));
    assert!(md.contains("| rustc |") && md.contains("| BLAS |"));

    // A second meta-training draw under out/seeds/1 (here the same trajectories) is pooled:
    // the row lists both draws, and two equal draws leave the difference as it was.
    std::fs::create_dir_all(d.path("out/seeds/1/quadratic")).unwrap();
    std::fs::copy(
        d.path("out/quadratic/trajectories.parquet"),
        d.path("out/seeds/1/quadratic/trajectories.parquet"),
    )
    .unwrap();
    let (_, md) = report(&d);
    let rows = claim_rows(&md);
    let q = rows.iter().find(|r| r[0].contains("§3.1")).unwrap();
    assert_eq!(q[8], diff, "{q:?}");
    assert!(
        q[10].starts_with("2: ") && q[10].contains("(seed 0)") && q[10].contains("(seed 1)"),
        "{q:?}"
    );
}

/// Each figure says where its curves come from: drawn after all of its checkpoints under out/,
/// or the committed figure of other runs, so that a figure and the settings under it are never
/// silently from different runs.
#[test]
fn each_figure_says_whether_it_was_drawn_from_this_out() {
    let d = Dir::new();
    quadratic_outputs(&d);
    let line_of = |md: &str, figure: &str| -> String {
        let after = md.split(&format!("![{figure}]")).nth(1).unwrap();
        let block = after.split("\n![").next().unwrap();
        block
            .lines()
            .find(|l| l.starts_with("- the committed") || l.starts_with("- drawn from"))
            .unwrap_or_else(|| panic!("no provenance line for {figure}: {block}"))
            .to_string()
    };
    // Figure 8's two checkpoints (the quadratic one stands in for both), then the figure.
    std::fs::create_dir_all(d.path("out/neural_art")).unwrap();
    for name in ["LSTM.npz", "Adam+LSTM.npz"] {
        std::fs::copy(
            d.path("out/quadratic/optimizer.npz"),
            d.path(&format!("out/neural_art/{name}")),
        )
        .unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(50));
    for figure in ["figure8.png", "figure7.png"] {
        std::fs::write(d.path(&format!("figures/{figure}")), b"png").unwrap();
    }
    let (_, md) = report(&d);
    assert!(
        line_of(&md, "figure8.png").starts_with("- drawn from this out/"),
        "{md}"
    );
    assert!(
        line_of(&md, "figure7.png").contains("holds none of its checkpoints"),
        "{md}"
    );
    // A checkpoint rewritten after the figure: the figure is no longer its.
    std::thread::sleep(std::time::Duration::from_millis(50));
    std::fs::copy(
        d.path("out/quadratic/optimizer.npz"),
        d.path("out/neural_art/LSTM.npz"),
    )
    .unwrap();
    let (_, md) = report(&d);
    assert!(
        line_of(&md, "figure8.png").contains("drawn from other runs than this out/'s"),
        "{md}"
    );
}

#[test]
fn a_corrupt_output_is_refused_and_no_page_is_written() {
    let d = Dir::new();
    std::fs::create_dir_all(d.path("out/quadratic")).unwrap();
    std::fs::write(
        d.path("out/quadratic/trajectories.parquet"),
        b"PAR1 not parquet",
    )
    .unwrap();
    d.fails(
        "report",
        &["--out", "out", "--figures", "figures", "-o", "page.html"],
        "page.html",
        "trajectories.parquet",
    );
}

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            let out = Command::new("sh")
                .args(["-c", &format!("command -v {name}")])
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        })
}

/// The page in a real browser: Chromium parses it, the claims table's cells are the ones
/// computed, and a screenshot is taken. Skipped, saying so, where Chromium is not installed.
#[test]
fn the_page_renders_in_headless_chromium() {
    let Some(browser) = chromium() else {
        eprintln!("skipped: Chromium is not installed (apt-get install chromium)");
        return;
    };
    let d = Dir::new();
    quadratic_outputs(&d);
    let (_, md) = report(&d);
    let url = format!("file://{}", d.path("out/report/index.html").display());
    let profile = d.path("chromium-profile");
    let headless = |extra: &[String]| {
        Command::new(&browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--allow-file-access-from-files",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra)
            .arg(&url)
            .output()
            .expect("run chromium")
    };
    let dom = headless(&["--dump-dom".into()]);
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom = String::from_utf8_lossy(&dom.stdout);
    let claims = dom
        .split("<table id=\"claims\">")
        .nth(1)
        .expect("the claims table is in the DOM");
    let quad = claim_rows(&md)
        .into_iter()
        .find(|r| r[0].contains("§3.1"))
        .unwrap();
    for cell in &quad[5..=9] {
        assert!(
            claims.contains(&format!("<td>{}</td>", cell.replace('±', "±"))),
            "cell {cell} not rendered"
        );
    }
    assert!(claims.contains("<td>not run</td>"));
    let shot = d.path("report.png");
    let out = headless(&[
        format!("--screenshot={}", shot.display()),
        "--window-size=1400,1800".into(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000);
}

#[test]
fn help_is_there() {
    assert_help("report");
}
