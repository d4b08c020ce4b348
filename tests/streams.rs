//! The binaries composed as a shell composes them, through `-` (standard input and
//! output) and named pipes. Every stream here is the test's own: nothing touches the system's
//! `/dev` paths.

use crate::common::*;
use l2l::trajectory::read_trajectories;
use std::os::unix::fs::FileTypeExt;

const SAMPLE: &[&str] = &[
    "quadratic",
    "--count",
    "6",
    "--dims",
    "3",
    "--seed",
    "3",
    "-o",
];

fn is_png(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x89PNG\r\n\x1a\n")
}

/// `sample-optimizee … -o - | evaluate --spec - … -o - | plot --panel -=Title -o fig.png`
/// gives the figure, and each stream holds exactly what the file would.
#[test]
fn sample_evaluate_and_plot_compose_through_standard_streams() {
    let d = Dir::new();
    let sample = [SAMPLE, &["-"]].concat();
    let evaluate = [
        "--spec", "-", "--steps", "6", "-O", "sgd", "-O", "adam", "-o", "-",
    ];
    let (stderr, stdout) = d.pipeline(
        b"",
        &[
            ("sample-optimizee", &sample),
            ("evaluate", &evaluate),
            ("plot", &["--panel", "-=Piped", "-o", "fig.png"]),
        ],
    );
    assert!(stdout.is_empty(), "plot wrote to standard output");
    assert!(stderr[0].contains("to standard output"), "{}", stderr[0]);
    assert!(is_png(&std::fs::read(d.path("fig.png")).unwrap()));
    assert!(d.path("fig.svg").exists());

    // The same steps through files: the spec and the trajectories are byte for byte the same.
    d.ok("sample-optimizee", &[SAMPLE, &["test.npz"]].concat());
    evaluate_briefly(&d, "sgd,adam", "t.parquet");
    let (_, spec) = d.pipeline(b"", &[("sample-optimizee", &sample)]);
    assert_eq!(spec, std::fs::read(d.path("test.npz")).unwrap());
    let (_, trajectories) = d.pipeline(&spec, &[("evaluate", &evaluate)]);
    assert_eq!(trajectories, std::fs::read(d.path("t.parquet")).unwrap());

    // plot -o - writes the PNG alone, and nothing named after `-`.
    let (_, png) = d.pipeline(
        &trajectories,
        &[("plot", &["--panel", "-=Piped", "-o", "-"])],
    );
    assert!(is_png(&png));
    assert!(d.names_starting("-").is_empty());
    assert!(
        d.names_starting(".").is_empty(),
        "{:?}",
        d.names_starting(".")
    );
}

/// The same pipeline through named pipes, which stay pipes.
#[test]
fn sample_evaluate_and_plot_compose_through_named_pipes() {
    let d = Dir::new();
    d.fifo("spec.fifo");
    d.fifo("trajectories.fifo");
    let stages: Vec<(&str, Vec<&str>)> = vec![
        ("sample-optimizee", [SAMPLE, &["spec.fifo"]].concat()),
        (
            "evaluate",
            vec![
                "--spec",
                "spec.fifo",
                "--steps",
                "6",
                "-O",
                "sgd,adam",
                "-o",
                "trajectories.fifo",
            ],
        ),
        (
            "plot",
            vec!["--panel", "trajectories.fifo=Named pipes", "-o", "fig.png"],
        ),
    ];
    let children: Vec<_> = stages
        .iter()
        .map(|(bin, args)| {
            d.command(bin, args)
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for ((bin, _), child) in stages.iter().zip(children) {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{bin} failed:\n{stderr}");
    }
    assert!(is_png(&std::fs::read(d.path("fig.png")).unwrap()));
    for fifo in ["spec.fifo", "trajectories.fifo"] {
        let kind = std::fs::symlink_metadata(d.path(fifo)).unwrap().file_type();
        assert!(kind.is_fifo(), "{fifo} is no longer a pipe");
    }
    assert!(
        d.names_starting(".").is_empty(),
        "{:?}",
        d.names_starting(".")
    );
}

/// A checkpoint streams from meta-train to evaluate; a run whose checkpoint goes to standard
/// output keeps no resume state and no lock.
#[test]
fn a_checkpoint_streams_from_meta_train_to_evaluate() {
    let d = Dir::new();
    specs(&d);
    train(&d, "opt.npz");
    std::fs::remove_file(d.path("opt.resume.npz")).unwrap();
    let (_, checkpoint) = d.pipeline(b"", &[("meta-train", &tiny_training("-"))]);
    assert_eq!(checkpoint, std::fs::read(d.path("opt.npz")).unwrap());
    let mut leftovers = d.names_starting(".");
    leftovers.extend(d.names_starting("-"));
    leftovers.extend(d.names_starting("opt.resume"));
    assert!(leftovers.is_empty(), "{leftovers:?}");

    evaluate_briefly(&d, "lstm:opt.npz", "from_file.parquet");
    let (_, piped) = d.pipeline(
        &checkpoint,
        &[(
            "evaluate",
            &[
                "--spec", "test.npz", "--steps", "6", "-O", "lstm:-", "-o", "-",
            ],
        )],
    );
    std::fs::write(d.path("piped.parquet"), piped).unwrap();
    assert_eq!(
        read_trajectories(&d.path("piped.parquet")).unwrap(),
        read_trajectories(&d.path("from_file.parquet")).unwrap()
    );
}

/// Two outputs (or two inputs) cannot share one stream; an empty or garbled standard input
/// is one error line. Nothing is written.
#[test]
fn misuses_of_the_standard_streams_are_refused() {
    let d = Dir::new();
    specs(&d);
    train(&d, "opt.npz");
    for (args, expect) in [
        (
            vec![
                "--spec",
                "test.npz",
                "--tune",
                "--validation",
                "val.npz",
                "-O",
                "sgd",
                "--tuning-output",
                "-",
                "-o",
                "-",
            ],
            "--output and --tuning-output are both -",
        ),
        (
            vec!["--spec", "-", "-O", "lstm:-", "-o", "t.parquet"],
            "--spec and a checkpoint of -O are both -",
        ),
        (
            vec!["--spec", "-", "-O", "sgd", "-o", "t.parquet"],
            "standard input: is empty",
        ),
    ] {
        let out = d
            .command("evaluate", &args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(expect), "'{expect}' not in: {stderr}");
        assert!(out.stdout.is_empty());
        assert!(!d.path("t.parquet").exists());
    }
    // A checkpoint where a spec belongs, piped in, is refused as from a file.
    let checkpoint = std::fs::read(d.path("opt.npz")).unwrap();
    let args = ["--spec", "-", "-O", "sgd", "-o", "t.parquet"];
    let out = d.run_fed("evaluate", &args, &checkpoint);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("standard input"), "{stderr}");
    assert!(!d.path("t.parquet").exists());
}

/// An output that leads through `/proc` (here the test's own link to `/proc/self/fd/1`, as
/// `/dev/stdout` is) is written in place even when standard output is a regular file, and the
/// link stays a link; a link to a regular file stays a link, and the file it leads to gets the
/// output.
#[test]
fn links_stay_links() {
    let d = Dir::new();
    specs(&d);
    evaluate_briefly(&d, "sgd,adam", "expected.parquet");
    let expected = std::fs::read(d.path("expected.parquet")).unwrap();
    std::os::unix::fs::symlink("/proc/self/fd/1", d.path("stdout")).unwrap();
    let captured = std::fs::File::create(d.path("captured.parquet")).unwrap();
    let out = d
        .command(
            "evaluate",
            &[
                "--spec", "test.npz", "--steps", "6", "-O", "sgd,adam", "-o", "stdout",
            ],
        )
        .stdout(captured)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kind = std::fs::symlink_metadata(d.path("stdout"))
        .unwrap()
        .file_type();
    assert!(
        kind.is_symlink(),
        "the link to /proc/self/fd/1 was replaced"
    );
    assert_eq!(std::fs::read(d.path("captured.parquet")).unwrap(), expected);

    std::fs::create_dir(d.path("real")).unwrap();
    std::os::unix::fs::symlink("real/target.parquet", d.path("alias.parquet")).unwrap();
    for _ in 0..2 {
        // The first run creates the file the link leads to; the second replaces it.
        evaluate_briefly(&d, "sgd,adam", "alias.parquet");
        let kind = std::fs::symlink_metadata(d.path("alias.parquet"))
            .unwrap()
            .file_type();
        assert!(kind.is_symlink(), "the link to a regular file was replaced");
        assert_eq!(
            std::fs::read(d.path("real/target.parquet")).unwrap(),
            expected
        );
    }
    assert!(
        d.names_starting(".").is_empty(),
        "{:?}",
        d.names_starting(".")
    );
    let in_real: Vec<_> = std::fs::read_dir(d.path("real")).unwrap().collect();
    assert_eq!(in_real.len(), 1, "{in_real:?}");
}
