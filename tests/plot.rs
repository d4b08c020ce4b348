//! `plot`: learning-curve panels and the architecture sweep from real trajectory files, and a
//! file that is not a trajectory refused.

mod common;
use common::*;

#[test]
fn panels_are_drawn_as_png_and_svg() {
    let d = Dir::new();
    specs(&d);
    train(&d, "opt.npz");
    evaluate_briefly(&d, "lstm:opt.npz,sgd,adam", "a.parquet");
    d.ok(
        "plot",
        &["--panel", "a.parquet=Quadratics", "-o", "fig.png"],
    );
    assert!(std::fs::metadata(d.path("fig.png")).unwrap().len() > 1000);
    let svg = std::fs::read_to_string(d.path("fig.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("LSTM"));
}

/// Figure 6's sweep from two cells, with its table.
#[test]
fn the_sweep_is_drawn_with_its_table() {
    let d = Dir::new();
    mlp_specs(&d);
    train_tiny_mlp(&d, "opt.npz", "1");
    for (spec, out) in [("test.npz", "t.parquet"), ("test2.npz", "t2.parquet")] {
        d.ok(
            "evaluate",
            &[
                "--spec",
                spec,
                "--steps",
                "3",
                "-O",
                "lstm:opt.npz,sgd=0.5",
                "-o",
                out,
            ],
        );
    }
    d.ok(
        "plot",
        &[
            "--cell",
            "t.parquet=1,4",
            "--cell",
            "t2.parquet=2,3",
            "--trained-on",
            "1,4",
            "--table",
            "cells.parquet",
            "-o",
            "sweep.png",
        ],
    );
    assert!(d.path("sweep.svg").exists() && d.path("cells.parquet").exists());
}

#[test]
fn a_file_that_is_not_a_trajectory_is_refused() {
    let d = Dir::new();
    specs(&d);
    d.fails(
        "plot",
        &["--panel", "test.npz", "-o", "f.png"],
        "f.png",
        "parquet",
    );
}

/// Issue #13, cause 5: a panel file that is the output (or the SVG beside it) is refused, and
/// left as it was.
#[test]
fn an_output_that_is_an_input_is_refused() {
    let d = Dir::new();
    specs(&d);
    evaluate_briefly(&d, "sgd,adam", "fig.png");
    let before = std::fs::read(d.path("fig.png")).unwrap();
    let out = d.run(
        "plot",
        &["--panel", "fig.png=Quadratics", "-o", "./fig.png"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("is the same file as a trajectory file"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(d.path("fig.png")).unwrap(), before);
}

/// Issue #13, cause 3: a trajectory whose step is beyond the documented bound is refused (it
/// once made plot allocate that many points and abort).
#[test]
fn a_step_beyond_the_bound_is_refused() {
    use l2l::trajectory::{write_table, Column};
    let d = Dir::new();
    write_table(
        &d.path("t.parquet"),
        vec![
            ("optimizer", Column::Utf8(vec!["sgd".into(), "sgd".into()])),
            ("problem", Column::Int64(vec![0, 0])),
            ("step", Column::Int64(vec![0, i64::MAX])),
            ("loss", Column::Float64(vec![Some(1.0), Some(0.5)])),
            ("lr", Column::Float64(vec![Some(0.1), Some(0.1)])),
        ],
    )
    .unwrap();
    d.fails(
        "plot",
        &["--panel", "t.parquet", "-o", "f.png"],
        "f.png",
        "is outside 0 … 1000000",
    );
}

#[test]
fn has_help() {
    assert_help("plot");
}
