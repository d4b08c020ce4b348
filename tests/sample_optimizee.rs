//! `sample-optimizee`: specs are deterministic, carry their kind and format version, and bad
//! requests are refused in one line with no file left behind.

mod common;
use common::*;
use l2l::io::Npz;

#[test]
fn the_same_seed_gives_the_same_spec() {
    let (a, b) = (Dir::new(), Dir::new());
    specs(&a);
    specs(&b);
    for name in ["train.npz", "val.npz", "test.npz"] {
        assert_eq!(
            std::fs::read(a.path(name)).unwrap(),
            std::fs::read(b.path(name)).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn specs_record_their_kind_and_format_version() {
    let (q, m) = (Dir::new(), Dir::new());
    specs(&q);
    mlp_specs(&m);
    for (d, name, kind) in [(&q, "test.npz", "quadratic"), (&m, "test2.npz", "mlp")] {
        let mut npz = Npz::open(&d.path(name)).unwrap();
        assert_eq!(npz.text("kind").unwrap(), kind);
        assert_eq!(npz.scalar("format_version").unwrap(), 1.0);
    }
}

/// Issue #13: a full disk is one line naming the file (it once added `ZipWriter drop failed:
/// Io(…)`), with nothing left in the full folder.
#[test]
fn a_full_disk_is_one_clean_error() {
    let d = Dir::new();
    let Some(_full) = FullFolder::mount(&d, "full") else {
        return;
    };
    let out = d.run(
        "sample-optimizee",
        &[
            "quadratic",
            "--count",
            "100",
            "--dims",
            "30",
            "--seed",
            "1",
            "-o",
            "full/q.npz",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.trim(),
        "sample-optimizee: error: writing full/q.npz: full/q.npz: No space left on device (os error 28)"
    );
    let left: Vec<_> = std::fs::read_dir(d.path("full"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["filler"]);
}

#[test]
fn bad_requests_are_refused() {
    let d = Dir::new();
    d.fails(
        "sample-optimizee",
        &["quadratic", "--count", "0", "--seed", "1", "-o", "s.npz"],
        "s.npz",
        "--count",
    );
    std::fs::write(d.path("bad.csv"), "1,2,3\n4,5\n").unwrap();
    d.fails(
        "sample-optimizee",
        &[
            "mlp", "--data", "bad.csv", "--count", "1", "--seed", "1", "-o", "s.npz",
        ],
        "s.npz",
        "line 2",
    );
}

/// Issue #13, cause 1: sizes beyond their documented bounds are refused before anything is
/// allocated.
#[test]
fn sizes_beyond_their_bounds_are_refused() {
    let d = Dir::new();
    for (args, expect) in [
        (
            &["--count", "1", "--dims", "100000"][..],
            "--dims must be between 1 and 10000",
        ),
        (
            &["--count", "1000000", "--dims", "1000"][..],
            "the most is 268435456",
        ),
    ] {
        let args = [&["quadratic", "--seed", "1", "-o", "s.npz"][..], args].concat();
        d.fails("sample-optimizee", &args, "s.npz", expect);
    }
    tiny_csv(&d.path("digits.csv"));
    d.fails(
        "sample-optimizee",
        &[
            "mlp",
            "--data",
            "digits.csv",
            "--count",
            "1",
            "--seed",
            "1",
            "--batch-size",
            "0",
            "-o",
            "s.npz",
        ],
        "s.npz",
        "--batch-size must be between 1 and 100000",
    );
}

/// A conv spec (§3.3) records its architecture, labels and parameter groups; bad CIFAR-10
/// files and labels are refused in one line with no spec left behind.
#[test]
fn conv_specs_and_bad_cifar_files() {
    let d = Dir::new();
    let data = fake_cifar(&d, "cifar", 30, 20);
    let data = data.to_str().unwrap();
    let conv = |labels: &str, out: &str| -> Vec<String> {
        [
            "conv", "--count", "2", "--seed", "4", "--labels", labels, "--data", data, "-o", out,
        ]
        .map(String::from)
        .to_vec()
    };
    let args = conv("0,1", "c2.npz");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let stderr = d.ok("sample-optimizee", &args);
    assert!(stderr.contains("6 training and 4 test images"), "{stderr}");
    let mut npz = l2l::io::Npz::open(&d.path("c2.npz")).unwrap();
    assert_eq!(npz.text("kind").unwrap(), "conv");
    assert_eq!(
        npz.array::<i64>("labels").unwrap().as_slice().unwrap(),
        &[0, 1]
    );
    // 22,762 parameters for 10 classes; 2 classes have (32 + 1) × 8 fewer output parameters.
    assert_eq!(
        npz.array::<f32>("theta0").unwrap().shape(),
        &[2, 22_762 - 33 * 8]
    );
    for (labels, expect) in [
        ("0,0", "distinct"),
        ("3", "2 labels or more"),
        ("0,12", "0-9"),
    ] {
        let args = conv(labels, "bad.npz");
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        d.fails("sample-optimizee", &args, "bad.npz", expect);
    }
    let batch = format!("{data}/data_batch_1.bin");
    let bytes = std::fs::read(&batch).unwrap();
    std::fs::write(&batch, &bytes[..bytes.len() - 100]).unwrap();
    let args = conv("0,1", "bad.npz");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    d.fails(
        "sample-optimizee",
        &args,
        "bad.npz",
        "not a whole number of 3,073-byte",
    );
    let mut labelled_10 = bytes.clone();
    labelled_10[3073] = 10;
    std::fs::write(&batch, &labelled_10).unwrap();
    d.fails(
        "sample-optimizee",
        &args,
        "bad.npz",
        "record 1 has label 10",
    );
    std::fs::remove_file(&batch).unwrap();
    d.fails(
        "sample-optimizee",
        &args,
        "bad.npz",
        "is not a CIFAR-10 folder",
    );
}

#[test]
fn has_help() {
    assert_help("sample-optimizee");
}
