//! `plot`: learning-curve panels and the architecture sweep from real trajectory files, and a
//! file that is not a trajectory refused.

use crate::common::*;
use std::path::Path;

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

/// A panel file that is the output (or the SVG beside it) is refused, and
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

/// A trajectory whose step is beyond the documented bound is refused (it
/// once made plot allocate that many points and abort).
#[test]
fn a_step_beyond_the_bound_is_refused() {
    use l2l::io::{write_table, Column};
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

/// A trajectory that pandas, polars or DuckDB re-saved (strings as `LargeUtf8` or
/// a dictionary, integers and floats of other widths, an all-null `lr`) draws the same figure
/// as the file evaluate wrote.
#[test]
fn a_re_saved_trajectory_draws_the_same_figure() {
    use arrow::array::{
        ArrayRef, DictionaryArray, Float32Array, Float64Array, Int32Array, Int64Array,
        LargeStringArray, NullArray, StringArray, UInt16Array,
    };
    use arrow::datatypes::Int8Type;
    use arrow::record_batch::RecordBatch;
    use std::sync::Arc;
    let d = Dir::new();
    let write = |name: &str, columns: Vec<(&str, ArrayRef)>| {
        let batch = RecordBatch::try_from_iter_with_nullable(
            columns.into_iter().map(|(n, c)| (n, c, true)),
        )
        .unwrap();
        let file = std::fs::File::create(d.path(name)).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    };
    let names = ["lstm", "lstm", "lstm", "lstm"];
    let (problems, steps) = ([0i64, 0, 1, 1], [0i64, 1, 0, 1]);
    let losses = [2.0f32, 1.5, 4.0, 0.25];
    write(
        "ours.parquet",
        vec![
            ("optimizer", Arc::new(StringArray::from(names.to_vec()))),
            ("problem", Arc::new(Int64Array::from(problems.to_vec()))),
            ("step", Arc::new(Int64Array::from(steps.to_vec()))),
            (
                "loss",
                Arc::new(Float64Array::from_iter_values(losses.map(f64::from))),
            ),
            ("lr", Arc::new(Float64Array::from(vec![None::<f64>; 4]))),
        ],
    );
    let dictionary: DictionaryArray<Int8Type> = names.into_iter().collect();
    for (name, optimizer) in [
        (
            "large.parquet",
            Arc::new(LargeStringArray::from(names.to_vec())) as ArrayRef,
        ),
        ("dictionary.parquet", Arc::new(dictionary) as ArrayRef),
    ] {
        write(
            name,
            vec![
                ("optimizer", optimizer),
                (
                    "problem",
                    Arc::new(Int32Array::from_iter_values(problems.map(|p| p as i32))),
                ),
                (
                    "step",
                    Arc::new(UInt16Array::from_iter_values(steps.map(|s| s as u16))),
                ),
                ("loss", Arc::new(Float32Array::from(losses.to_vec()))),
                ("lr", Arc::new(NullArray::new(4))),
            ],
        );
    }
    for name in ["ours", "large", "dictionary"] {
        d.ok(
            "plot",
            &[
                "--panel",
                &format!("{name}.parquet=T"),
                "-o",
                &format!("{name}.png"),
            ],
        );
    }
    let ours = std::fs::read(d.path("ours.svg")).unwrap();
    for name in ["large", "dictionary"] {
        assert!(
            std::fs::read(d.path(&format!("{name}.svg"))).unwrap() == ours,
            "{name}"
        );
    }
}

/// Found by fuzzing: trajectories whose corruption the parquet decoder did not catch (a
/// negative column offset in the footer, a page that overruns its decoder, a page header that
/// declares 2³¹ elements to skip) are one error line;
/// one with means of 1e308 and 5e-324 once made the log axis search for ticks for ever, and is
/// drawn.
#[test]
fn fuzzer_found_trajectories_are_refused_or_drawn() {
    let d = Dir::new();
    let fixture = |name: &str| {
        let path = d.path(name);
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(name),
            &path,
        )
        .unwrap();
        path
    };
    for (name, expect) in [
        (
            "negative-column-offset.parquet",
            "outside the file's 2156 bytes",
        ),
        (
            "decoder-panic.parquet",
            "the file is corrupt (the decoder stopped at",
        ),
        // A page header that declares 2³¹ elements to skip: once near a minute of read calls.
        ("huge-skip.parquet", "failed to fill whole buffer"),
    ] {
        fixture(name);
        d.fails("plot", &["--panel", name, "-o", "f.png"], "f.png", expect);
    }
    fixture("extreme-losses.parquet");
    let mut plot = d
        .command(
            "plot",
            &["--panel", "extreme-losses.parquet", "-o", "e.png"],
        )
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while plot.try_wait().unwrap().is_none() {
        if start.elapsed().as_secs() > 60 {
            plot.kill().unwrap();
            panic!("plot hung on extreme losses");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(plot.wait().unwrap().success());
    assert!(d.path("e.png").exists());
}

#[test]
fn has_help() {
    assert_help("plot");
}

/// Appendix B's figures from a proposal table: the trajectory view and a sweep; a sweep step
/// the table lacks is refused in one line.
#[test]
fn probe_figures_are_drawn() {
    use l2l::proposals::{write_proposals, Proposal};
    let d = Dir::new();
    let mut rows = Vec::new();
    for step in 0..6 {
        for (optimizer, k) in [("lstm", 1.0), ("sgd", 0.5), ("adam", 0.2)] {
            for coordinate in [4, 9] {
                rows.push(Proposal {
                    step,
                    coordinate,
                    gradient: 0.1 * step as f64,
                    update: -k * step as f64,
                    optimizer: optimizer.into(),
                    swept: false,
                });
                for g in [-1.0, 0.0, 1.0] {
                    if step == 3 {
                        rows.push(Proposal {
                            step,
                            coordinate,
                            gradient: g,
                            update: -k * g,
                            optimizer: optimizer.into(),
                            swept: true,
                        });
                    }
                }
            }
        }
    }
    write_proposals(&d.path("probe.parquet"), &rows).unwrap();
    d.ok("plot", &["--probe", "probe.parquet", "-o", "f10.png"]);
    d.ok(
        "plot",
        &[
            "--probe",
            "probe.parquet",
            "--sweep-step",
            "3",
            "-o",
            "f11.png",
        ],
    );
    for f in ["f10.png", "f10.svg", "f11.png", "f11.svg"] {
        assert!(d.path(f).exists(), "{f}");
    }
    d.fails(
        "plot",
        &[
            "--probe",
            "probe.parquet",
            "--sweep-step",
            "4",
            "-o",
            "bad.png",
        ],
        "bad.png",
        "no sweep at step 4",
    );
}
