//! The sections of the results page, each a list of [`Block`]s computed from the files.

use super::claims::{Claim, Draw, Verdict};
use super::{Block, Sources};
use crate::error::Result;
use crate::evaluation::tuning_window;
use crate::io::{companion, read_table, Npz};
use crate::learned::LearnedOptimizer;
use crate::plotting::{display_name, training_curve_svg};
use crate::training_log::TrainingLog;
use arrow::datatypes::DataType;
use std::path::{Path, PathBuf};

/// Decimals for a number of this size: 1 from 100 up, 2 from 10, else 4.
fn decimals(size: f64) -> usize {
    if size >= 100.0 {
        1
    } else if size >= 10.0 {
        2
    } else {
        4
    }
}

/// A loss or difference with a precision that fits its size (`-` for a missing value).
pub fn number(x: f64) -> String {
    if x.is_nan() {
        "-".into()
    } else if !x.is_finite() {
        "diverged".into()
    } else {
        format!("{x:.*}", decimals(x.abs()))
    }
}

/// `d ± se` at one precision, the coarser of the two's.
fn plus_minus(d: f64, se: f64) -> String {
    if se.is_nan() {
        return number(d);
    }
    let digits = decimals(d.abs().max(se));
    format!("{d:.digits$} ± {se:.digits$}")
}

/// The draws behind a pooled difference: how many, and each one's difference (none listed for
/// a single draw, whose difference is the row's).
fn draws_cell(draws: &[Draw]) -> String {
    match draws.len() {
        0 => "-".into(),
        1 => "1".into(),
        n => format!(
            "{n}: {}",
            draws
                .iter()
                .map(|d| format!(
                    "{} (seed {})",
                    plus_minus(d.difference, d.standard_error),
                    d.seed
                ))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    }
}

pub fn claims_table(claims: &[Claim]) -> Vec<Block> {
    let header = [
        "paper",
        "claim",
        "learned optimizer",
        "outputs (under out/)",
        "step",
        "learned mean",
        "best tuned baseline",
        "baseline mean",
        "paired difference ± SE",
        "test runs per draw",
        "meta-training draws: each one's difference ± SE",
        "lower in",
        "held",
    ]
    .map(String::from)
    .to_vec();
    let mut rows = Vec::new();
    for c in claims {
        if c.evidence.is_empty() {
            let mut row = vec![
                c.spec.section.to_string(),
                c.spec.claim.to_string(),
                "not run".into(),
                format!("make {}", c.spec.target),
            ];
            row.extend(std::iter::repeat_n(
                "-".to_string(),
                header.len() - row.len(),
            ));
            rows.push(row);
        }
        for e in &c.evidence {
            let verdict = match e.verdict {
                Verdict::Holds => "✓",
                Verdict::NotDistinguishable => "not distinguishable (within 2 SE)",
                Verdict::Fails => "✗",
            };
            let unit = if c.spec.sweep { " cells" } else { "" };
            rows.push(vec![
                c.spec.section.to_string(),
                c.spec.claim.to_string(),
                e.learned.clone(),
                e.file.clone(),
                e.step.to_string(),
                number(e.learned_mean),
                e.baseline.clone(),
                number(e.baseline_mean),
                plus_minus(e.difference, e.standard_error),
                format!("{}{unit}", e.count),
                draws_cell(&e.draws),
                format!("{} of {}", e.lower, e.count),
                verdict.to_string(),
            ]);
        }
    }
    vec![
        Block::Heading("The paper's claims".into()),
        Block::Paragraph(
            "One row per claim and learned optimizer. Each learned optimizer is named by what \
             it is: LSTM is the paper's pure LSTM trained the paper's way; NAG+LSTM (or \
             Adam+LSTM) adds a learned correction to that tuned rule's step; LSTM-sub was \
             trained on other labels. The best tuned baseline is the one of SGD, RMSprop, Adam \
             and NAG (each with its rate tuned on validation runs) with the lowest mean at that \
             step. The paired difference is learned − baseline per test run (per cell for \
             Figure 6), with its standard error; where several meta-training draws were run \
             (make seeds), it pools them: the per-run difference is averaged over the draws, \
             and the spread between the draws' own differences is added to the standard error, \
             so a claim resting on one lucky draw is not held; \"lower in\" counts the runs where the learned \
             optimizer is lower. ✓ means the claim held: the difference lies more than two \
             standard errors below zero (above it where the paper says the optimizer fails; \
             for Figure 6, over cells). Within two standard errors it is not distinguishable, \
             never held; ✗ means it lies beyond them on the other side."
                .into(),
        ),
        Block::Table {
            id: Some("claims"),
            header,
            rows,
        },
    ]
}

/// (file in figures/, caption, make target, checkpoints behind it as (legend, path in out/)).
type FigureEntry = (
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

const MNIST_CHECKPOINTS: &[(&str, &str)] = &[
    ("NAG+LSTM", "mnist/trained.npz"),
    ("LSTM (paper's recipe)", "mnist-paper/LSTM.npz"),
];

const FIGURES: &[FigureEntry] = &[
    (
        "figure4.png",
        "Figure 4: mean loss against step on 10-d quadratics (left), the MNIST base network for 100 steps (centre) and for 200 (right); learned optimizers solid, tuned baselines dashed.",
        "figure4",
        &[
            ("LSTM (quadratics)", "quadratic/optimizer.npz"),
            ("NAG+LSTM", "mnist/trained.npz"),
            ("LSTM (paper's recipe)", "mnist-paper/LSTM.npz"),
        ],
    ),
    (
        "figure5.png",
        "Figure 5: the MNIST optimizers, unchanged, on 40 hidden units, two hidden layers and ReLU units.",
        "figure5",
        MNIST_CHECKPOINTS,
    ),
    (
        "figure6.png",
        "Figure 6: mean loss at step 100 across layers {1, 2, 3} × units {5, 10, 20, 40, 80}, each learned optimizer against the best tuned baseline of each cell; the training architecture circled.",
        "figure6",
        MNIST_CHECKPOINTS,
    ),
    (
        "figure7.png",
        "Figure 7: the minibatch training loss (the paper's quantity) of the CIFAR conv net on CIFAR-10, CIFAR-5 and CIFAR-2, its runs drawing from the test batch, which meta-training, validation and tuning never touch.",
        "figure7",
        &[
            ("LSTM", "cifar/LSTM.npz"),
            ("LSTM-sub", "cifar/LSTM-sub.npz"),
            ("NAG+LSTM", "cifar/NAG+LSTM.npz"),
            ("NAG+LSTM-sub", "cifar/NAG+LSTM-sub.npz"),
        ],
    ),
    (
        "figure7-generalization.png",
        "Beyond the paper: Figure 7's runs, their loss on as many training-batch images, which the optimizee never trained on.",
        "figure7",
        &[],
    ),
    (
        "figure8.png",
        "Figure 8: neural art on MobileNet v1 features: the training style at 64 px, a new style at 128 px, and the two mixed panels.",
        "figure8",
        &[("LSTM", "neural_art/LSTM.npz"), ("Adam+LSTM", "neural_art/Adam+LSTM.npz")],
    ),
    (
        "figure9-train64.png",
        "Figure 9: content | LSTM-styled | style, training style at 64 px.",
        "figure9",
        &[],
    ),
    (
        "figure9-new128.png",
        "Figure 9: content | LSTM-styled | style, new style at 128 px.",
        "figure9",
        &[],
    ),
    (
        "figure10.png",
        "Figure 10 (Appendix B): the LSTM's proposed update as a function of the gradient, beside SGD's and Adam's.",
        "appendix-b",
        &[],
    ),
    ("figure11.png", "Figure 11 (Appendix B): proposed updates along a trajectory.", "appendix-b", &[]),
    ("figure12.png", "Figure 12 (Appendix B).", "appendix-b", &[]),
    ("figure13.png", "Figure 13 (Appendix B).", "appendix-b", &[]),
    (
        "appendix-d.png",
        "Appendix D (no figure in the paper): the LSTM, LSTM+GAC, NTM-BFGS and NTM-L-BFGS, meta-trained alike on 10-d quadratics, against the tuned baselines on fresh 10-d quadratics, 30-d ones, 10-d ones with W ~ U[0, 1), and the MNIST base network (no NTM-BFGS: its n × n memory does not fit), over 200 steps (trained for 100).",
        "appendix-d",
        &[
            ("LSTM", "appendix-d/LSTM.npz"),
            ("LSTM+GAC", "appendix-d/LSTM+GAC.npz"),
            ("NTM-BFGS", "appendix-d/NTM-BFGS.npz"),
            ("NTM-L-BFGS", "appendix-d/NTM-L-BFGS.npz"),
        ],
    ),
    (
        "fashion_mnist.png",
        "Beyond the paper: the MNIST optimizers, unchanged, on Fashion-MNIST.",
        "fashion-mnist",
        MNIST_CHECKPOINTS,
    ),
];

/// What trained a checkpoint: its kept epoch and validation loss, its rule, and meta-train's
/// settings from its resume state, less the epoch budget (0 there, as resuming may extend it).
fn checkpoint_settings(out: &Path, legend: &str, path: &str) -> Result<Option<String>> {
    let file = out.join(path);
    if !file.is_file() {
        return Ok(None);
    }
    let c = LearnedOptimizer::load(&file)?;
    let mut text = format!(
        "{legend}: out/{path}, kept at epoch {} (validation loss {}), {} input processing, output scale {}{}",
        c.epoch,
        number(c.validation_loss),
        c.preprocessing,
        c.output_scale,
        c.base.map_or(String::new(), |b| format!(", added to tuned {b}'s step")),
    );
    if let Some(resume) = companion(&file, ".resume.npz").filter(|r| r.is_file()) {
        let mut npz = Npz::open(&resume)?;
        if npz.has("settings") {
            let settings = npz.text("settings")?.replacen(", epochs: 0,", ",", 1);
            text += &format!("; meta-train settings: {settings}");
        }
    }
    Ok(Some(text))
}

/// Where a figure's curves come from, so that a committed figure is never shown above settings
/// of other runs without a word: drawn after every one of its checkpoints under `out/` (so from
/// them), or the committed figure, drawn from runs this `out/` does not hold. None for a figure
/// without checkpoints.
fn provenance(figure: &Path, out: &Path, checkpoints: &[(&str, &str)]) -> Option<String> {
    if checkpoints.is_empty() {
        return None;
    }
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let present: Vec<_> = checkpoints
        .iter()
        .filter_map(|(_, path)| modified(&out.join(path)))
        .collect();
    let drawn = modified(figure);
    Some(match (present.iter().max(), drawn) {
        (None, _) => "the committed figure: this out/ holds none of its checkpoints, so the \
                      lines below describe nothing of it"
            .into(),
        (Some(newest), Some(drawn)) if drawn >= *newest && present.len() == checkpoints.len() => {
            "drawn from this out/: the checkpoints below are the figure's".into()
        }
        _ => "the committed figure, drawn from other runs than this out/'s: the checkpoints \
              below are out/'s, not the figure's"
            .into(),
    })
}

pub fn figures(sources: &Sources) -> Result<Vec<Block>> {
    let mut blocks = vec![Block::Heading("Figures".into())];
    let mut listed = std::collections::HashSet::new();
    for (file, caption, target, checkpoints) in FIGURES {
        listed.insert(file.to_string());
        if !sources.figures.join(file).is_file() {
            blocks.push(Block::Paragraph(format!(
                "{caption} Not drawn yet: make {target}."
            )));
            continue;
        }
        let mut settings = vec![format!("make {target}")];
        settings.extend(provenance(
            &sources.figures.join(file),
            &sources.out,
            checkpoints,
        ));
        for (legend, path) in *checkpoints {
            settings.extend(checkpoint_settings(&sources.out, legend, path)?);
        }
        blocks.push(Block::Figure {
            file: file.to_string(),
            caption: caption.to_string(),
            settings,
        });
    }
    // Any other committed PNG (Appendix C's triples, other recipes' figures) with its name.
    let mut others = Vec::new();
    collect(
        &sources.figures,
        &mut |p| p.extension().is_some_and(|e| e == "png"),
        &mut others,
    );
    for p in others {
        let rel = p
            .strip_prefix(&sources.figures)
            .unwrap_or(&p)
            .to_string_lossy()
            .into_owned();
        if listed.contains(&rel) || rel == "report.png" {
            continue;
        }
        blocks.push(Block::Figure {
            caption: format!("figures/{rel}"),
            file: rel,
            settings: vec![],
        });
    }
    Ok(blocks)
}

/// Every file under `dir` (sorted, the report's own folder left out) that `keep` accepts.
fn collect(dir: &Path, keep: &mut dyn FnMut(&Path) -> bool, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "report") {
                continue;
            }
            collect(&p, keep, out);
        } else if keep(&p) {
            out.push(p);
        }
    }
}

fn relative(out: &Path, p: &Path) -> String {
    p.strip_prefix(out)
        .unwrap_or(p)
        .to_string_lossy()
        .into_owned()
}

pub fn tuning(out: &Path) -> Result<Vec<Block>> {
    let mut files = Vec::new();
    collect(
        out,
        &mut |p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with("tuning.parquet"))
        },
        &mut files,
    );
    let mut rows = Vec::new();
    for f in &files {
        let t = read_table(
            f,
            &[
                ("optimizer", DataType::Utf8),
                ("lr", DataType::Float64),
                ("validation_final_loss", DataType::Float64),
                ("chosen", DataType::Boolean),
            ],
            "a tuning table (evaluate --tuning-output) has optimizer, lr, \
             validation_final_loss, chosen",
        )?;
        let window = tuning_window(&t, f)?;
        let file = match window {
            1 => relative(out, f),
            w => format!("{} (mean of the last {w} steps)", relative(out, f)),
        };
        let (names, lrs, losses, chosen) = (
            t.text("optimizer"),
            t.floats("lr"),
            t.floats("validation_final_loss"),
            t.bools("chosen"),
        );
        let mut order: Vec<&String> = Vec::new();
        for n in &names {
            if !order.contains(&n) {
                order.push(n);
            }
        }
        for name in order {
            let mine: Vec<usize> = (0..t.rows()).filter(|&i| &names[i] == name).collect();
            let pick = mine.iter().find(|&&i| chosen[i]);
            let grid: Vec<String> = mine
                .iter()
                .map(|&i| {
                    format!(
                        "{}: {}",
                        short(lrs[i].unwrap_or(f64::NAN)),
                        number(losses[i].unwrap_or(f64::NAN))
                    )
                })
                .collect();
            rows.push(vec![
                file.clone(),
                display_name(name),
                pick.map_or("-".into(), |&i| short(lrs[i].unwrap_or(f64::NAN))),
                pick.map_or("-".into(), |&i| number(losses[i].unwrap_or(f64::NAN))),
                format!("{} rates", mine.len()),
                grid.join(", "),
            ]);
        }
    }
    let mut blocks = vec![Block::Heading("Tuned learning rates".into())];
    if rows.is_empty() {
        blocks.push(Block::Paragraph(
            "No tuning tables yet (evaluate --tuning-output writes them; every figure target runs it).".into(),
        ));
        return Ok(blocks);
    }
    blocks.push(Block::Paragraph(
        "Each baseline's rate is the one with the lowest mean validation loss at the last step \
         (or over the last steps, where the file says so: evaluate --validation-window), over the \
         grid shown (validation runs have their own seeds, never the test runs')."
            .into(),
    ));
    blocks.push(Block::Table {
        id: Some("tuning"),
        header: [
            "table",
            "optimizer",
            "chosen rate",
            "its validation loss",
            "grid",
            "rate: validation loss",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    });
    Ok(blocks)
}

/// A learning rate in three significant digits.
fn short(x: f64) -> String {
    if x.is_nan() {
        return "-".into();
    }
    let s = format!("{x:.2e}");
    match s.split_once('e') {
        Some((m, e)) => {
            let m = m.trim_end_matches('0').trim_end_matches('.');
            let e: i32 = e.parse().unwrap_or(0);
            if (-3..=2).contains(&e) {
                format!("{}", (x * 1e6).round() / 1e6)
            } else {
                format!("{m}e{e}")
            }
        }
        None => s,
    }
}

pub fn training_logs(sources: &Sources) -> Result<Vec<Block>> {
    let mut files = Vec::new();
    collect(
        &sources.out,
        &mut |p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with(".log.parquet"))
        },
        &mut files,
    );
    let mut blocks = vec![Block::Heading("Meta-training".into())];
    if files.is_empty() {
        blocks.push(Block::Paragraph(
            "No meta-training logs yet (meta-train writes <checkpoint stem>.log.parquet beside each checkpoint).".into(),
        ));
        return Ok(blocks);
    }
    let mut rows = Vec::new();
    let mut drawings = Vec::new();
    for f in &files {
        let (log, kept) = TrainingLog::read(f)?;
        let points: Vec<(u64, f64)> = log
            .rows
            .iter()
            .filter_map(|r| r.validation_loss.map(|v| (r.epoch, v)))
            .collect();
        let name = relative(&sources.out, f).replace(".log.parquet", ".npz");
        let at = |e: Option<u64>| {
            points
                .iter()
                .find(|p| Some(p.0) == e)
                .map_or("-".into(), |p| number(p.1))
        };
        let epochs = log.rows.last().map_or(0, |r| r.epoch);
        rows.push(vec![
            name.clone(),
            epochs.to_string(),
            at(points.first().map(|p| p.0)),
            kept.map_or("-".into(), |k| k.to_string()),
            at(kept),
            format!("{:.1}", log.seconds_so_far() / 60.0),
        ]);
        drawings.push(Block::Svg {
            svg: training_curve_svg(&name, &points, kept, &sources.font)?,
            caption: format!(
                "out/{name}: validation loss against epoch; the kept checkpoint circled."
            ),
        });
    }
    blocks.push(Block::Table {
        id: Some("training"),
        header: [
            "checkpoint (under out/)",
            "epochs",
            "first validation loss",
            "kept epoch",
            "kept validation loss",
            "wall minutes",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    });
    blocks.extend(drawings);
    Ok(blocks)
}

pub fn bench(out: &Path) -> Result<Vec<Block>> {
    let path = out.join("bench/results.parquet");
    let mut blocks = vec![Block::Heading("Speed (make bench)".into())];
    if !path.is_file() {
        blocks.push(Block::Paragraph("Not run: make bench.".into()));
        return Ok(blocks);
    }
    let t = read_table(
        &path,
        &[
            ("task", DataType::Utf8),
            ("measure", DataType::Utf8),
            ("value", DataType::Float64),
            ("unit", DataType::Utf8),
        ],
        "make bench's table has task, measure, value, unit",
    )?;
    let (task, measure, value, unit) = (
        t.text("task"),
        t.text("measure"),
        t.floats("value"),
        t.text("unit"),
    );
    let rows = (0..t.rows())
        .map(|i| {
            vec![
                task[i].clone(),
                measure[i].clone(),
                value[i].map_or("-".into(), |v| format!("{v:.4}")),
                unit[i].clone(),
            ]
        })
        .collect();
    blocks.push(Block::Table {
        id: Some("bench"),
        header: ["task", "measure", "value", "unit"]
            .map(String::from)
            .to_vec(),
        rows,
    });
    Ok(blocks)
}
