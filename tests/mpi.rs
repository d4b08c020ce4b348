//! `meta-train` and `evaluate` under `mpirun -np 2`: the same bytes as one
//! process, the ranks a batch allows, and a job killed and resumed. Built only with the `mpi`
//! feature (`make test` runs it as `make test-mpi`), and skipped, with a message, where
//! `mpirun` is absent.
#![cfg(feature = "mpi")]

mod common;
use common::*;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Whether `mpirun` runs here; says so on stderr when it does not.
fn have_mpirun() -> bool {
    let found = Command::new("mpirun").arg("--version").output().is_ok();
    if !found {
        eprintln!("skipped: mpirun is not installed (apt-get install openmpi-bin)");
    }
    found
}

/// `bin args` as K ranks of `mpirun`, in the test folder.
fn mpirun(d: &Dir, ranks: usize, bin: &str, args: &[&str]) -> Command {
    let one = d.command(bin, args);
    let mut command = Command::new("mpirun");
    command
        .args(["-np", &ranks.to_string(), "--oversubscribe"])
        .arg(one.get_program())
        .args(one.get_args())
        .current_dir(d.path(""))
        // Containers and CI often run as root, which Open MPI refuses unless told.
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    command
}

fn succeeded(what: &str, out: Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{what} failed:\n{stderr}");
    stderr
}

fn bytes(d: &Dir, name: &str) -> Vec<u8> {
    std::fs::read(d.path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The tiny meta-training of the harness with a batch of 8 (4 shards), one thread a rank and
/// `extra` flags.
fn quadratic_training(out: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = tiny_training(out).iter().map(|s| s.to_string()).collect();
    set(&mut args, "--batch", "8");
    args.extend(
        ["--threads", "1"]
            .iter()
            .chain(extra)
            .map(|s| s.to_string()),
    );
    args
}

/// Sets the value of `flag` in `args`.
fn set(args: &mut [String], flag: &str, value: &str) {
    let at = args
        .iter()
        .position(|s| s == flag)
        .expect("the flag is there");
    args[at + 1] = value.into();
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn meta_training_on_two_ranks_writes_the_bytes_of_one_process() {
    if !have_mpirun() {
        return;
    }
    let d = Dir::new();
    specs(&d);
    // BPTT (with and without second derivatives), evolution strategies and a correction to
    // a tuned rule on quadratics, and BPTT on a tiny MLP.
    for (name, extra) in [
        ("bptt", &[][..]),
        ("second-order", &["--meta-gradient", "second-order"][..]),
        (
            "es",
            &[
                "--meta-gradient",
                "es",
                "--es-pairs",
                "3",
                "--es-scope",
                "all",
            ][..],
        ),
        ("base", &["--base", "nag", "--lr-grid", "1e-2:1:2"][..]),
        ("lstm-gac", &["--architecture", "lstm-gac"][..]),
        ("ntm-bfgs", &["--architecture", "ntm-bfgs"][..]),
        (
            "ntm-lbfgs",
            &["--architecture", "ntm-lbfgs", "--history", "2"][..],
        ),
    ] {
        let one = quadratic_training(&format!("{name}-1.npz"), extra);
        let two = quadratic_training(&format!("{name}-2.npz"), extra);
        succeeded("one process", d.run("meta-train", &strs(&one)));
        succeeded(
            "two ranks",
            mpirun(&d, 2, "meta-train", &strs(&two)).output().unwrap(),
        );
        assert!(
            bytes(&d, &format!("{name}-1.npz")) == bytes(&d, &format!("{name}-2.npz")),
            "{name}: the checkpoints differ"
        );
    }
    let m = Dir::new();
    mlp_specs(&m);
    // Two problems a batch: one shard each.
    let mlp = |out: &str| {
        let mut args: Vec<String> = tiny_mlp_training(out, "3")
            .iter()
            .chain(&["--eval-every", "1", "--threads", "1"])
            .map(|s| s.to_string())
            .collect();
        set(&mut args, "--batch", "2");
        args
    };
    let (one, two) = (mlp("mlp-1.npz"), mlp("mlp-2.npz"));
    let (one, two) = (strs(&one), strs(&two));
    succeeded("one process", m.run("meta-train", &one));
    succeeded(
        "two ranks",
        mpirun(&m, 2, "meta-train", &two).output().unwrap(),
    );
    assert!(
        bytes(&m, "mlp-1.npz") == bytes(&m, "mlp-2.npz"),
        "MLP checkpoints differ"
    );
}

#[test]
fn evaluation_on_two_ranks_writes_the_bytes_of_one_process() {
    if !have_mpirun() {
        return;
    }
    let d = Dir::new();
    specs(&d);
    succeeded(
        "training",
        d.run("meta-train", &strs(&quadratic_training("opt.npz", &[]))),
    );
    // `--tune` last: Open MPI 4's mpirun takes `--tune FILE` in the program's arguments for
    // its own option.
    let args = |out: &'static str, tuning: &'static str| {
        vec![
            "--spec",
            "test.npz",
            "--steps",
            "6",
            "-O",
            "lstm:opt.npz,sgd,adam",
            "--validation",
            "val.npz",
            "--tuning-output",
            tuning,
            "-o",
            out,
            "--tune",
        ]
    };
    succeeded(
        "one process",
        d.run("evaluate", &args("one.parquet", "one.tuning.parquet")),
    );
    succeeded(
        "two ranks",
        mpirun(
            &d,
            2,
            "evaluate",
            &args("two.parquet", "two.tuning.parquet"),
        )
        .output()
        .unwrap(),
    );
    assert!(
        bytes(&d, "one.parquet") == bytes(&d, "two.parquet"),
        "trajectories differ"
    );
    assert!(
        bytes(&d, "one.tuning.parquet") == bytes(&d, "two.tuning.parquet"),
        "tuning tables differ"
    );
    // Held-out losses (CIFAR-10's test images) are gathered with the training losses.
    tiny_conv_spec(&d, "3", "by-layer", "conv.npz");
    let conv = |out: &'static str| {
        [
            "--spec",
            "conv.npz",
            "--steps",
            "4",
            "-O",
            "sgd,adam",
            "--test-every",
            "2",
            "-o",
            out,
        ]
    };
    succeeded("one process", d.run("evaluate", &conv("c1.parquet")));
    succeeded(
        "two ranks",
        mpirun(&d, 2, "evaluate", &conv("c2.parquet"))
            .output()
            .unwrap(),
    );
    assert!(
        bytes(&d, "c1.parquet") == bytes(&d, "c2.parquet"),
        "held-out trajectories differ"
    );
    // More ranks than shards of problems: the extra ranks wait, the bytes are the same.
    succeeded(
        "three ranks",
        mpirun(
            &d,
            3,
            "evaluate",
            &args("three.parquet", "three.tuning.parquet"),
        )
        .output()
        .unwrap(),
    );
    assert!(bytes(&d, "one.parquet") == bytes(&d, "three.parquet"));
    // Two horizons at once: every rate's measures at both are gathered together.
    let horizons = |tag: &str| -> Vec<String> {
        let mut args: Vec<String> = [
            "--spec",
            "test.npz",
            "--steps",
            "3,6",
            "-O",
            "lstm:opt.npz,sgd,adam",
            "--validation",
            "val.npz",
        ]
        .map(String::from)
        .to_vec();
        for h in ["3", "6"] {
            args.extend(["-o".into(), format!("{tag}{h}.parquet")]);
            args.extend(["--tuning-output".into(), format!("{tag}{h}.tuning.parquet")]);
        }
        args.push("--tune".into());
        args
    };
    succeeded("one process", d.run("evaluate", &strs(&horizons("h1_"))));
    succeeded(
        "two ranks",
        mpirun(&d, 2, "evaluate", &strs(&horizons("h2_")))
            .output()
            .unwrap(),
    );
    for name in [
        "3.parquet",
        "3.tuning.parquet",
        "6.parquet",
        "6.tuning.parquet",
    ] {
        assert!(
            bytes(&d, &format!("h1_{name}")) == bytes(&d, &format!("h2_{name}")),
            "{name} differs"
        );
    }
    assert!(bytes(&d, "h1_6.parquet") == bytes(&d, "one.parquet"));
}

#[test]
fn more_ranks_than_shards_is_refused_with_the_most_allowed() {
    if !have_mpirun() {
        return;
    }
    let d = Dir::new();
    specs(&d);
    let args = quadratic_training("x.npz", &[]);
    let out = mpirun(&d, 5, "meta-train", &strs(&args)).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("at most 4 ranks") && stderr.contains("mpirun -np 4 or fewer"),
        "{stderr}"
    );
    assert!(!d.path("x.npz").exists());
}

#[test]
fn a_job_whose_rank_is_killed_ends_and_resumes_to_the_same_checkpoint() {
    if !have_mpirun() {
        return;
    }
    let d = Dir::new();
    specs(&d);
    // About 5 s of training, a resume state every 500 epochs.
    let mut straight = quadratic_training("straight.npz", &[]);
    set(&mut straight, "--epochs", "40000");
    set(&mut straight, "--eval-every", "500");
    let mut killed = straight.clone();
    set(&mut killed, "-o", "killed.npz");
    succeeded("one process", d.run("meta-train", &strs(&straight)));

    let job = mpirun(&d, 2, "meta-train", &strs(&killed))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Kill rank 1 (a child of mpirun) once a resume state is there, mid-run.
    let state = d.path("killed.resume.npz");
    let start = Instant::now();
    while !state.exists() {
        assert!(start.elapsed() < Duration::from_secs(60), "no resume state");
        std::thread::sleep(Duration::from_millis(5));
    }
    let children = Command::new("pgrep")
        .args(["-P", &job.id().to_string()])
        .output()
        .unwrap();
    let pids: Vec<String> = String::from_utf8_lossy(&children.stdout)
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(pids.len(), 2, "expected two ranks: {pids:?}");
    Command::new("kill")
        .args(["-9", &pids[1]])
        .status()
        .unwrap();
    let ended = job.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&ended.stderr);
    assert!(!ended.status.success(), "the job went on after a rank died");
    assert!(
        said.contains("rank 1") && said.contains("signal 9"),
        "mpirun did not say which rank died:\n{said}"
    );
    assert!(
        !d.path("killed.npz").exists(),
        "a killed job wrote its checkpoint"
    );
    // Resumed with another K: the same bytes as the run that was never stopped.
    let out = mpirun(&d, 3, "meta-train", &strs(&killed))
        .output()
        .unwrap();
    let stderr = succeeded("resumed job", out);
    assert!(stderr.contains("resuming from"), "{stderr}");
    assert!(
        bytes(&d, "straight.npz") == bytes(&d, "killed.npz"),
        "resumed checkpoint differs"
    );
}
