//! `meta-train`: determinism, resume, and the settings it refuses before any work. The recipes
//! beyond the paper have a file of their own.

mod recipes;

use crate::common::*;
use l2l::io::write_npz;
use l2l::learned::LearnedOptimizer;

#[test]
fn the_same_seeds_give_the_same_checkpoint() {
    let (a, b) = (Dir::new(), Dir::new());
    for d in [&a, &b] {
        specs(d);
        train(d, "opt.npz");
    }
    assert_eq!(
        LearnedOptimizer::load(&a.path("opt.npz")).unwrap(),
        LearnedOptimizer::load(&b.path("opt.npz")).unwrap()
    );
    assert_eq!(
        std::fs::read(a.path("opt.npz")).unwrap(),
        std::fs::read(b.path("opt.npz")).unwrap()
    );
}

/// Meta-training makes the same bytes whichever sgemm kernel OpenBLAS runs (each one this CPU
/// can run forced in turn, and none): l2l's products are its own (kernels/gemm.rs), summed in
/// one order on every CPU. A quadratic and an MLP checkpoint, as Figure 4's two families.
#[test]
fn checkpoints_do_not_depend_on_the_blas_kernel() {
    let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let has = |flag: &str| flags.split_whitespace().any(|f| f == flag);
    // Debian's OpenBLAS 0.3.21's kernels, each with the instructions it needs; `Cooperlake`
    // is OpenBLAS's own choice on an AMD EPYC with AVX-512 (family 25, model 17).
    const KERNELS: &[(&str, &[&str])] = &[
        ("Prescott", &[]),
        ("Core2", &[]),
        ("Nehalem", &[]),
        ("Atom", &[]),
        ("Penryn", &[]),
        ("Dunnington", &[]),
        ("Opteron", &[]),
        ("Barcelona", &["sse4a"]),
        ("Bulldozer", &["fma4"]),
        ("Sandybridge", &["avx"]),
        ("Piledriver", &["avx", "fma"]),
        ("Steamroller", &["avx", "fma"]),
        ("Haswell", &["avx2", "fma"]),
        ("Zen", &["avx2", "fma"]),
        ("Excavator", &["avx2", "fma"]),
        ("SkylakeX", &["avx512bw"]),
        ("Cooperlake", &["avx512_bf16"]),
    ];
    let runnable = KERNELS
        .iter()
        .filter(|(_, needs)| needs.iter().all(|&flag| has(flag)));
    let kernels = std::iter::once(None).chain(runnable.map(|&(name, _)| Some(name)));
    let mut made: Vec<(Option<&str>, Vec<u8>, Vec<u8>)> = Vec::new();
    for kernel in kernels {
        let d = Dir::new();
        specs(&d);
        mlp_specs(&d);
        let train_under = |args: Vec<&str>| {
            let mut command = d.command("meta-train", &args);
            match kernel {
                Some(k) => command.env("OPENBLAS_CORETYPE", k),
                None => command.env_remove("OPENBLAS_CORETYPE"),
            };
            let out = command.output().unwrap();
            assert!(
                out.status.success(),
                "{kernel:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        train_under(tiny_training("quadratic.npz"));
        train_under(tiny_mlp_training("mlp.npz", "2"));
        made.push((
            kernel,
            std::fs::read(d.path("quadratic.npz")).unwrap(),
            std::fs::read(d.path("mlp.npz")).unwrap(),
        ));
    }
    for (kernel, quadratic, mlp) in &made[1..] {
        assert!(
            quadratic == &made[0].1,
            "quadratic checkpoint under {kernel:?}"
        );
        assert!(mlp == &made[0].2, "MLP checkpoint under {kernel:?}");
    }
}

/// Trains the tiny run to `out` for 2 of its epochs and removes the checkpoint, leaving the
/// resume state a run killed after its second epoch leaves; returns the whole run's arguments.
fn stopped_after_two_epochs<'a>(d: &Dir, out: &'a str) -> Vec<&'a str> {
    let args = tiny_training(out);
    let mut short = args.clone();
    short[EPOCHS_AT] = "2";
    d.ok("meta-train", &short);
    std::fs::remove_file(d.path(out)).unwrap();
    args
}

#[test]
fn killed_training_resumes_where_it_stopped() {
    let d = Dir::new();
    specs(&d);
    let straight = {
        train(&d, "straight.npz");
        l2l::learned::LearnedOptimizer::load(&d.path("straight.npz")).unwrap()
    };
    // A run cut short after 2 epochs (as if killed after its last resume state) ...
    let args = stopped_after_two_epochs(&d, "resumed.npz");
    // ... continues from its resume state to the same result.
    let log = d.ok("meta-train", &args);
    assert!(log.contains("resuming"), "{log}");
    assert_eq!(
        straight,
        l2l::learned::LearnedOptimizer::load(&d.path("resumed.npz")).unwrap()
    );
}

#[test]
fn patience_stops_early_and_a_rerun_writes_the_same_checkpoint() {
    let d = Dir::new();
    specs(&d);
    let mut args = tiny_training("stopped.npz");
    args[EPOCHS_AT] = "300";
    args.extend(["--patience", "2"]);
    let stderr = d.ok("meta-train", &args);
    let (log, best) = l2l::training_log::TrainingLog::read(&d.path("stopped.log.parquet")).unwrap();
    let (reached, best) = (log.rows.last().unwrap().epoch, best.unwrap());
    // Two validations (every 2 epochs) after the best, none better.
    assert_eq!(reached, best + 4, "{stderr}");
    assert!(
        stderr.contains(&format!("stopped at epoch {reached} of 300")),
        "{stderr}"
    );
    // Where it stopped, nothing else changed: a budget of that many epochs keeps the same.
    let mut budget = tiny_training("budget.npz");
    let reached_text = reached.to_string();
    budget[EPOCHS_AT] = &reached_text;
    d.ok("meta-train", &budget);
    let bytes = |name: &str| std::fs::read(d.path(name)).unwrap();
    assert_eq!(bytes("stopped.npz"), bytes("budget.npz"));
    // Run again, it resumes where it stopped and trains no further.
    std::fs::remove_file(d.path("stopped.npz")).unwrap();
    let again = d.ok("meta-train", &args);
    assert!(again.contains(&format!("at epoch {reached}")), "{again}");
    assert_eq!(bytes("stopped.npz"), bytes("budget.npz"));
}

/// Rewrites every member of the npz at `path` as float64 (which every reader converts back
/// exactly), with `change` applied to member `name`.
fn rewrite_member(path: &std::path::Path, name: &str, change: impl Fn(&mut ndarray::ArrayD<f64>)) {
    let mut npz = l2l::io::Npz::open(path).unwrap();
    let names = npz.names().to_vec();
    let arrays: Vec<(String, ndarray::ArrayD<f64>)> = names
        .iter()
        .map(|n| {
            let mut a = npz.array::<f64>(n).unwrap();
            if n == name {
                change(&mut a);
            }
            (n.clone(), a)
        })
        .collect();
    drop(npz);
    write_npz(path, |z| {
        for (n, a) in arrays {
            z.add(&n, a);
        }
        Ok(())
    })
    .unwrap();
}

/// A resume state whose meta-Adam moments are NaN is refused in one line and left as it was
/// (it once resumed, skipped its unrolls, exited 0 and saved NaN weights); the same state with
/// its moments intact resumes.
#[test]
fn a_resume_state_with_nan_moments_is_refused() {
    let d = Dir::new();
    specs(&d);
    let args = stopped_after_two_epochs(&d, "r.npz");
    let state = d.path("r.resume.npz");
    rewrite_member(&state, "adam_m", |a| a.fill(f64::NAN));
    let before = std::fs::read(&state).unwrap();
    d.fails("meta-train", &args, "r.npz", "'adam_m' holds NaN");
    assert!(
        std::fs::read(&state).unwrap() == before,
        "the resume state was changed"
    );
    rewrite_member(&state, "adam_m", |a| a.fill(0.0));
    let log = d.ok("meta-train", &args);
    assert!(log.contains("resuming"), "{log}");
}

/// While one run writes an output, a second run on the same output is
/// refused at once (both once exited 0, and 1 in 17 mixed a checkpoint from one with a resume
/// state from the other); temporaries that a killed run left are removed by the next run.
#[test]
fn a_second_run_on_the_same_output_is_refused_and_stale_temporaries_are_removed() {
    let d = Dir::new();
    specs(&d);
    let args = tiny_training("busy.npz");
    let mut long = args.clone();
    long[EPOCHS_AT] = "1000000";
    let mut first = d
        .command("meta-train", &long)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lock = d.path(".busy.npz.lock");
    let start = std::time::Instant::now();
    while !lock.exists() && start.elapsed().as_secs() < 20 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let claimed = lock.exists();
    let second = d.run("meta-train", &[&args[..], &["--restart"]].concat());
    // Stopped before any assertion, so that a failing test leaves no run behind.
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(claimed, "the first run never claimed its output");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "{stderr}");
    assert!(
        stderr.contains("another run is writing this --output"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    // What a run killed in the middle of its saves leaves behind.
    for stale in [".busy.npz.4242.tmp", ".busy.resume.npz.4242.tmp"] {
        std::fs::write(d.path(stale), b"partial").unwrap();
    }
    d.ok("meta-train", &[&args[..], &["--restart"]].concat());
    let left = d.names_starting(".busy");
    assert!(left.is_empty(), "left behind: {left:?}");
    l2l::learned::LearnedOptimizer::load(&d.path("busy.npz")).unwrap();
}

#[test]
fn bad_settings_are_refused_before_any_work() {
    let d = Dir::new();
    specs(&d);
    std::fs::write(d.path("text.npz"), "hello").unwrap();
    let meta_train = |train: &str, flags: &[&str], expect: &str| {
        let args = [&["--train", train, "-o", "m.npz"], flags].concat();
        d.fails("meta-train", &args, "m.npz", expect)
    };
    meta_train("text.npz", &[], "not a readable .npz");
    let train = "train.npz";
    meta_train(
        train,
        &["--steps", "10", "--unroll", "3"],
        "multiple of --unroll",
    );
    meta_train(
        train,
        &["--steps", "10", "--unroll", "5", "--meta-loss-from", "11"],
        "--meta-loss-from must be between 1 and --steps (10)",
    );
    meta_train(
        train,
        &["--imitate", "lbfgs=1"],
        "--imitate takes NAME or NAME=LR",
    );
    meta_train(train, &["--imitate", "nag"], "give --validation or NAME=LR");
    meta_train(
        train,
        &["--base-form", "scaled", "--meta-gradient", "es"],
        "give --base NAME[=LR]",
    );
    meta_train(
        train,
        &["--steps", "6", "--unroll", "3", "--validation-window", "0"],
        "--validation-window must be between 1 and the steps of a validation run (6), got 0",
    );
    meta_train(train, &["--init", "text.npz"], "starting checkpoint");
    meta_train(train, &["--epochs", "0"], "--epochs must be at least 1");
    // Tapes beyond any machine's memory (100,000 problems, unrolls of 10,000 steps): one line
    // before anything is allocated, not an out-of-memory kill in the first unroll.
    meta_train(
        train,
        &["--batch", "100000", "--steps", "10000", "--unroll", "10000"],
        "of memory available; lower --batch or --unroll",
    );
}

/// A spec that numpy wrote (float64, no family record) is a pool to draw training batches from.
#[test]
fn a_numpy_written_spec_trains() {
    let d = Dir::new();
    numpy_spec(&d.path("np_train.npz"), 6, 3, "W", 6, false);
    numpy_spec(&d.path("np_val.npz"), 4, 3, "W", 4, false);
    let mut args = vec![
        "--train",
        "np_train.npz",
        "--validation",
        "np_val.npz",
        "-o",
        "opt.npz",
    ];
    args.extend_from_slice(TINY_TRAIN);
    d.ok("meta-train", &args);
    assert!(LearnedOptimizer::load(&d.path("opt.npz")).is_ok());
}

/// On a tiny MLP: the paper's training, the second-order meta-gradient, and its check against
/// finite differences, through the binary.
#[test]
fn mlp_training_and_the_second_order_meta_gradient_run() {
    let d = Dir::new();
    mlp_specs(&d);
    train_tiny_mlp(&d, "opt.npz", "2");
    let second_order = [
        &[
            "--train",
            "train.npz",
            "--meta-gradient",
            "second-order",
            "-o",
            "second.npz",
        ][..],
        TINY_MLP_TRAIN,
    ]
    .concat();
    d.ok(
        "meta-train",
        &[&second_order[..], &["--epochs", "2"]].concat(),
    );
    let check = d.ok(
        "meta-train",
        &[&second_order[..], &["--check-meta-gradient", "1"]].concat(),
    );
    assert!(check.contains("second-order BPTT"), "{check}");
}

/// Meta-train's output (or its resume state) cannot be one of its inputs.
#[test]
fn an_output_that_is_an_input_is_refused() {
    let d = Dir::new();
    specs(&d);
    train(&d, "opt.npz");
    let before: Vec<Vec<u8>> = ["train.npz", "val.npz", "opt.npz"]
        .iter()
        .map(|f| std::fs::read(d.path(f)).unwrap())
        .collect();
    for (output, extra, expect) in [
        (
            "train.npz",
            &[][..],
            "--output train.npz is the same file as --train",
        ),
        (
            "./val.npz",
            &[][..],
            "--output ./val.npz is the same file as --validation",
        ),
        (
            "opt.npz",
            &["--init", "./opt.npz"][..],
            "the same file as --init",
        ),
    ] {
        let args = [extra, &tiny_training(output)].concat();
        let out = d.run("meta-train", &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(expect),
            "{args:?}: {stderr}"
        );
    }
    let after: Vec<Vec<u8>> = ["train.npz", "val.npz", "opt.npz"]
        .iter()
        .map(|f| std::fs::read(d.path(f)).unwrap())
        .collect();
    assert!(before == after, "an input changed");
}

/// A non-finite setting or family record is refused, and a run in which
/// every unroll was skipped fails with their count and writes no checkpoint.
#[test]
fn runs_that_cannot_train_fail() {
    let d = Dir::new();
    specs(&d);
    let train_flags = |out: &'static str, train: &'static str| {
        [&["--train", train, "-o", out][..], TINY_TRAIN].concat()
    };
    d.fails(
        "meta-train",
        &[
            &train_flags("m.npz", "train.npz")[..],
            &["--forget-bias", "nan"],
        ]
        .concat(),
        "m.npz",
        "--forget-bias must be a finite number",
    );
    // The family record of a spec, with a NaN θ0 standard deviation.
    let mut npz = l2l::io::Npz::open(&d.path("train.npz")).unwrap();
    let names = npz.names().to_vec();
    let arrays: Vec<_> = names
        .iter()
        .map(|n| (n.clone(), npz.array::<f64>(n).unwrap()))
        .collect();
    write_npz(&d.path("nan_family.npz"), |a| {
        for (name, array) in arrays {
            if name == "family_theta0_std" {
                a.scalar_f64(&name, f64::NAN);
            } else if name == "W" || name == "y" || name == "theta0" {
                a.add(&name, array.mapv(|x| x as f32));
            } else {
                a.add(&name, array.mapv(|x| x as i64));
            }
        }
        Ok(())
    })
    .unwrap();
    d.fails(
        "meta-train",
        &train_flags("m.npz", "nan_family.npz"),
        "m.npz",
        "standard deviation must be between 0 and 1e6",
    );
    // Problems so large that every gradient overflows: nothing can be trained.
    let (n, k) = (4, 3);
    write_npz(&d.path("huge.npz"), |a| {
        a.add("W", ndarray::Array3::<f32>::from_elem((n, k, k), 1e19));
        a.add("y", ndarray::Array2::<f32>::zeros((n, k)));
        a.add("theta0", ndarray::Array2::<f32>::ones((n, k)));
        Ok(())
    })
    .unwrap();
    d.fails(
        "meta-train",
        &train_flags("m.npz", "huge.npz"),
        "m.npz",
        "nothing was trained: all 8 unrolls were skipped",
    );
    assert!(!d.path("m.resume.npz").exists());
}

/// A build without MPI, started as K copies by mpirun or srun, would run the whole
/// job K times into the same outputs; it refuses and says how to build with MPI.
#[cfg(not(feature = "mpi"))]
#[test]
fn a_build_without_mpi_refuses_to_run_as_several_ranks() {
    let d = Dir::new();
    specs(&d);
    for launcher in ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"] {
        let out = d
            .command("meta-train", &tiny_training("m.npz"))
            .env(launcher, "2")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("make mpi") && stderr.lines().count() == 1,
            "{stderr}"
        );
        assert!(!d.path("m.npz").exists());
    }
}

#[test]
fn has_help() {
    assert_help("meta-train");
}
