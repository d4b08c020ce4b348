//! External optimizees (docs/formats.md, "External optimizees"): a model served by another
//! process over l2l's protocol gives the same trajectories as l2l's own, and every fault of
//! the process is refused in one line with nothing written and meta-train's resume state kept.
//! The servers are the Python helper's (python/), run by `L2L_PYTHON` (python3 where unset;
//! `make test` names one that imports numpy); where it lacks numpy, the tests that need it say
//! so and pass.

use crate::common::*;
use l2l::bench::{python_has_numpy, python_interpreter as interpreter};
use l2l::trajectory::read_trajectories;

fn python_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python")
}

/// Whether the interpreter imports numpy here; if not, says which test skips.
fn python_present(test: &str) -> bool {
    let ok = python_has_numpy();
    if !ok {
        eprintln!(
            "{test}: skipped, no {} with numpy here (make test installs them)",
            interpreter()
        );
    }
    ok
}

/// The harness's quadratic specs and a tiny optimizer trained on them (opt.npz), where the
/// interpreter imports numpy.
fn trained_quadratics(test: &str) -> Option<Dir> {
    if !python_present(test) {
        return None;
    }
    let d = Dir::new();
    specs(&d);
    train(&d, "opt.npz");
    Some(d)
}

/// Runs the interpreter with `args` in the test's folder; its standard output, after checking that
/// it succeeded.
fn python(d: &Dir, args: &[&str]) -> String {
    let out = std::process::Command::new(interpreter())
        .args(args)
        .current_dir(d.path(""))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{stderr}",
        interpreter()
    );
    String::from_utf8(out.stdout).unwrap()
}

fn server(mode: &str, k: usize) -> String {
    let script = python_dir().join("tests/fault_server.py");
    format!("{} {} {mode} {k}", interpreter(), script.display())
}

fn external_spec(d: &Dir, command: &str, role: &str, count: &str, out: &str) {
    d.ok(
        "sample-optimizee",
        &[
            "external",
            "--command",
            command,
            "--role",
            role,
            "--count",
            count,
            "--seed",
            "0",
            "--timeout",
            "5",
            "-o",
            out,
        ],
    );
}

/// Refused in one line (the process's own traceback aside), exit non-zero, no output.
fn refused(d: &Dir, bin: &str, args: &[&str], output: &str, names: &[&str]) {
    let out = d.run(bin, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{bin} {args:?} succeeded:\n{stderr}");
    let line = stderr.lines().last().unwrap_or("");
    assert!(line.starts_with(&format!("{bin}: error: ")), "{stderr}");
    for name in names {
        assert!(line.contains(name), "'{name}' missing from: {line}");
    }
    assert!(!d.path(output).exists(), "{output} was written");
}

#[test]
fn quadratics_served_from_python_give_the_specs_trajectories_bit_for_bit() {
    let Some(d) = trained_quadratics("quadratics_served_from_python") else {
        return;
    };
    let script = python_dir().join("examples/quadratic_spec.py");
    external_spec(
        &d,
        &format!("{} {} test.npz", interpreter(), script.display()),
        "test",
        "6",
        "served.npz",
    );
    let optimizers = "lstm:opt.npz,sgd=0.03,nag=0.01,rmsprop=0.01,adam=0.1,lbfgs=1";
    same_trajectories(&d, ["test.npz", "served.npz"], optimizers, 20, 6 * 6 * 21);
}

/// `evaluate` of `optimizers` for `steps` on l2l's own spec and on the served one gives `rows`
/// rows, each loss the same bits.
fn same_trajectories(
    d: &Dir,
    [own, served]: [&str; 2],
    optimizers: &str,
    steps: usize,
    rows: usize,
) {
    let steps = steps.to_string();
    for (spec, out) in [(own, "own.parquet"), (served, "served.parquet")] {
        d.ok(
            "evaluate",
            &[
                "--spec", spec, "--steps", &steps, "-O", optimizers, "-o", out,
            ],
        );
    }
    let own = read_trajectories(&d.path("own.parquet")).unwrap();
    let served = read_trajectories(&d.path("served.parquet")).unwrap();
    assert_eq!((own.len(), served.len()), (rows, rows));
    let key = |r: &l2l::trajectory::TrajectoryRow| (r.optimizer.clone(), r.problem, r.step);
    for (a, b) in own.iter().zip(&served) {
        assert_eq!(key(a), key(b));
        assert_eq!(a.loss.to_bits(), b.loss.to_bits(), "{a:?} {b:?}");
    }
}

#[test]
fn every_fault_of_the_process_is_one_line_naming_the_problem_and_step() {
    if !python_present("every_fault_of_the_process") {
        return;
    }
    let d = Dir::new();
    for mode in ["exit", "hang", "short", "length", "nan", "fail"] {
        let spec = format!("{mode}.npz");
        external_spec(&d, &server(mode, 3), "test", "4", &spec);
        std::fs::write(d.path("fault"), "").unwrap();
        let args = [
            "--spec",
            &spec,
            "--steps",
            "6",
            "-O",
            "adam=0.1",
            "-o",
            "out.parquet",
        ];
        refused(
            &d,
            "evaluate",
            &args,
            "out.parquet",
            &["test problem", "step 3"],
        );
        std::fs::remove_file(d.path("fault")).unwrap();
        d.ok("evaluate", &args);
        std::fs::remove_file(d.path("out.parquet")).unwrap();
    }
}

#[test]
fn a_dead_command_a_wrong_version_or_too_many_problems_is_refused_at_the_handshake() {
    let d = Dir::new();
    let draw = |command: &str, count: &str| {
        let args = [
            "external",
            "--command",
            command,
            "--role",
            "test",
            "--count",
            count,
            "--seed",
            "0",
            "-o",
            "s.npz",
        ];
        args.map(str::to_string)
    };
    let refuse = |args: [String; 11], names: &[&str]| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(&d, "sample-optimizee", &args, "s.npz", names);
    };
    refuse(draw("exit 3", "2"), &["handshake", "exit status: 3"]);
    if !python_present("a_wrong_version") {
        return;
    }
    std::fs::write(d.path("fault"), "").unwrap();
    refuse(draw(&server("version", 0), "2"), &["protocol version 2"]);
    refuse(draw(&server("ok", 0), "9"), &["--count 9", "0 to 7"]);
}

#[test]
fn a_fault_in_meta_training_keeps_the_resume_state_and_the_run_resumes_to_the_same_result() {
    if !python_present("a_fault_in_meta_training") {
        return;
    }
    let d = Dir::new();
    // Epoch e trains on problems 2e and 2e + 1: problem 6 is the fourth epoch's.
    let command = server("train-exit", 6);
    external_spec(&d, &command, "train", "64", "train.npz");
    external_spec(&d, &command, "validation", "4", "val.npz");
    let run = |out: &str| -> Vec<String> {
        [
            "--train",
            "train.npz",
            "--validation",
            "val.npz",
            "--epochs",
            "6",
            "--batch",
            "2",
            "--steps",
            "20",
            "--unroll",
            "10",
            "--eval-every",
            "1",
            "--threads",
            "2",
            "-o",
            out,
        ]
        .map(str::to_string)
        .to_vec()
    };
    let args = |v: &[String]| v.iter().map(String::clone).collect::<Vec<_>>();
    let straight = args(&run("straight.npz"));
    d.ok(
        "meta-train",
        &straight.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    std::fs::write(d.path("fault"), "").unwrap();
    let resumed = args(&run("resumed.npz"));
    let resumed: Vec<&str> = resumed.iter().map(String::as_str).collect();
    refused(
        &d,
        "meta-train",
        &resumed,
        "resumed.npz",
        &["train problem 6", "step 0"],
    );
    assert!(d.path("resumed.resume.npz").exists());
    std::fs::remove_file(d.path("fault")).unwrap();
    let stderr = d.ok("meta-train", &resumed);
    assert!(stderr.contains("at epoch 3"), "{stderr}");
    assert_eq!(
        std::fs::read(d.path("straight.npz")).unwrap(),
        std::fs::read(d.path("resumed.npz")).unwrap()
    );
    let log = |name: &str| {
        let (t, _) = l2l::training_log::TrainingLog::read(&d.path(name)).unwrap();
        t.rows
            .iter()
            .map(|r| r.training_final_loss.to_bits())
            .collect::<Vec<_>>()
    };
    assert_eq!(log("straight.log.parquet"), log("resumed.log.parquet"));
}

#[test]
fn a_training_loop_stepped_by_serve_updates_takes_evaluates_steps_bit_for_bit() {
    let Some(d) = trained_quadratics("a_training_loop_stepped_by_serve_updates") else {
        return;
    };
    let driver = python_dir().join("tests/loop_with_updates.py");
    for optimizer in ["lstm:opt.npz", "lbfgs=1", "nag=0.03"] {
        d.ok(
            "evaluate",
            &[
                "--spec",
                "test.npz",
                "--steps",
                "12",
                "-O",
                optimizer,
                "-o",
                "e.parquet",
            ],
        );
        let rows = read_trajectories(&d.path("e.parquet")).unwrap();
        let want: Vec<u64> = (rows.iter().filter(|r| r.problem == 0))
            .map(|r| r.loss.to_bits())
            .collect();
        let driver = driver.to_str().unwrap();
        let stdout = python(
            &d,
            &[
                driver,
                "test.npz",
                optimizer,
                env!("CARGO_BIN_EXE_evaluate"),
                "12",
            ],
        );
        let got: Vec<u64> = (stdout.lines()).map(|l| l.parse().unwrap()).collect();
        assert_eq!(got, want, "{optimizer}");
        std::fs::remove_file(d.path("e.parquet")).unwrap();
    }
}

#[test]
fn serve_updates_refuses_a_wrong_frame_in_one_line() {
    let d = Dir::new();
    let hello: Vec<u8> = [&b"HELO"[..], &40u32.to_le_bytes(), &1u32.to_le_bytes()]
        .concat()
        .into_iter()
        .chain([3u64, 0, 0, 0].iter().flat_map(|v| v.to_le_bytes()))
        .chain(0u32.to_le_bytes())
        .collect();
    let step = |values: usize| -> Vec<u8> {
        let body: Vec<u8> = (0..values).flat_map(|_| 1.0f32.to_le_bytes()).collect();
        [&b"STEP"[..], &(body.len() as u32).to_le_bytes(), &body].concat()
    };
    for (input, names) in [
        ([&hello[..], &step(5)].concat(), &["step 0", "24"][..]),
        (
            [&hello[..], &step(6), &step(6), b"STOP\0\0\0\0"].concat(),
            &["step 2", "STOP"][..],
        ),
        (step(6), &["HELO"][..]),
        (hello[..20].to_vec(), &["HELO"][..]),
    ] {
        let out = d.run_fed("evaluate", &["--serve-updates", "-O", "adam=0.1"], &input);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        for name in names {
            assert!(stderr.contains(name), "'{name}' missing from: {stderr}");
        }
    }
}

#[test]
fn meta_training_on_served_quadratics_writes_the_same_checkpoint() {
    if !python_present("meta_training_on_served_quadratics") {
        return;
    }
    let d = Dir::new();
    // Specs without a family, so that l2l's own source trains on the spec's one problem every
    // epoch, as the served spec's source does.
    numpy_spec(&d.path("pool.npz"), 1, 3, "W", 1, false);
    numpy_spec(&d.path("val.npz"), 4, 3, "W", 4, false);
    let script = python_dir().join("examples/quadratic_spec.py");
    for (spec, role, count, out) in [
        ("pool.npz", "train", "1", "served-pool.npz"),
        ("val.npz", "validation", "4", "served-val.npz"),
    ] {
        let command = format!("{} {} {spec}", interpreter(), script.display());
        external_spec(&d, &command, role, count, out);
    }
    let flags = [
        "--epochs",
        "6",
        "--batch",
        "1",
        "--steps",
        "12",
        "--unroll",
        "6",
        "--eval-every",
        "2",
    ];
    same_training(
        &d,
        ["pool.npz", "val.npz"],
        ["served-pool.npz", "served-val.npz"],
        &flags,
    );
}

/// meta-train with `flags` on l2l's own specs and on the served ones writes every array of the
/// checkpoint in the same bytes (the served one's `training_data` names its command instead
/// of the data) and the same training and validation losses in its log.
fn same_training(d: &Dir, own: [&str; 2], served: [&str; 2], flags: &[&str]) {
    for ([train, validation], out) in [(own, "own.npz"), (served, "served.npz")] {
        let specs = ["--train", train, "--validation", validation, "-o", out];
        d.ok("meta-train", &[&specs[..], flags].concat());
    }
    let compare = "import numpy as np\n\
        a, b = np.load('own.npz'), np.load('served.npz')\n\
        assert set(a.files) ^ set(b.files) <= {'training_data'}, (a.files, b.files)\n\
        assert all(a[k].tobytes() == b[k].tobytes() for k in a.files if k != 'training_data')\n\
        print(len(a.files))";
    python(d, &["-c", compare]);
    let log = |name: &str| {
        let (t, _) = l2l::training_log::TrainingLog::read(&d.path(name)).unwrap();
        (t.rows.iter())
            .map(|r| {
                (
                    r.training_final_loss.to_bits(),
                    r.validation_loss.map(f64::to_bits),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(log("own.log.parquet"), log("served.log.parquet"));
}

/// A CSV of 50 digits of 300 pixels (a product over them spans two of l2l's blocks of k), a
/// test spec of 3 runs on its held-out fifth and training and validation specs on the rest,
/// each the MLP 300-4-10 with minibatches of 8, and the same specs served by
/// python/examples/mlp_spec.py.
fn mlp_specs_and_their_servers(test: &str) -> Option<Dir> {
    if !python_present(test) {
        return None;
    }
    let d = Dir::new();
    digits_csv(&d.path("digits.csv"), 300);
    for (name, count, seed, split) in [
        ("test.npz", "3", "3", "test"),
        ("train.npz", "1", "1", "train"),
        ("val.npz", "2", "2", "train"),
    ] {
        tiny_mlp_spec(&d, name, count, seed, "4", split);
    }
    let script = python_dir().join("examples/mlp_spec.py");
    for (served, role, count, args) in [
        ("served-test.npz", "test", "3", "test.npz"),
        (
            "served-train.npz",
            "train",
            "3",
            "train.npz --training-draws 1",
        ),
        ("served-val.npz", "validation", "2", "val.npz"),
    ] {
        let command = format!("{} {} {args}", interpreter(), script.display());
        external_spec(&d, &command, role, count, served);
    }
    Some(d)
}

#[test]
fn the_mlp_served_from_numpy_gives_its_trajectories_bit_for_bit() {
    let Some(d) = mlp_specs_and_their_servers("the_mlp_served_from_numpy") else {
        return;
    };
    train_tiny_mlp(&d, "opt.npz", "2");
    let optimizers = "lstm:opt.npz,sgd=0.5,nag=0.1,rmsprop=0.01,adam=0.03,lbfgs=1";
    same_trajectories(
        &d,
        ["test.npz", "served-test.npz"],
        optimizers,
        8,
        6 * 3 * 9,
    );
}

#[test]
fn meta_training_on_the_served_mlp_writes_the_same_checkpoint() {
    let Some(d) = mlp_specs_and_their_servers("meta_training_on_the_served_mlp") else {
        return;
    };
    let flags = [
        "--epochs",
        "3",
        "--batch",
        "1",
        "--steps",
        "8",
        "--unroll",
        "4",
        "--eval-every",
        "1",
        "--hidden",
        "4",
        "--preprocessing",
        "log-sign",
    ];
    same_training(
        &d,
        ["train.npz", "val.npz"],
        ["served-train.npz", "served-val.npz"],
        &flags,
    );
}
