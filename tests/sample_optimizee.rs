//! `sample-optimizee`: specs are deterministic, carry their kind and format version, and bad
//! requests are refused in one line with no file left behind.

use crate::common::*;
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
    // Each in the oldest version that holds it: an MLP spec records its split (version 2).
    for (d, name, kind, version) in [
        (&q, "test.npz", "quadratic", 1.0),
        (&m, "test2.npz", "mlp", 2.0),
    ] {
        let mut npz = Npz::open(&d.path(name)).unwrap();
        assert_eq!(npz.text("kind").unwrap(), kind);
        assert_eq!(npz.scalar("format_version").unwrap(), version);
    }
    assert_eq!(
        Npz::open(&m.path("test2.npz"))
            .unwrap()
            .text("split")
            .unwrap(),
        "test"
    );
}

/// A full disk is one line naming the file (it once added `ZipWriter drop failed:
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

/// Sizes beyond their documented bounds are refused before anything is
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
        (
            &["--count", "1", "--theta0-std", "1e30"][..],
            "θ0 standard deviation must be between 0 and 1e6",
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
    assert!(
        stderr.contains("minibatches from 6 images of the train split, 4 held-out images"),
        "{stderr}"
    );
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

/// The neural-art spec of two small photos on the tiny feature network, and every kind of bad
/// image or network: each one error line, and no spec written.
#[test]
fn neural_art_specs_and_bad_images() {
    let d = Dir::new();
    tiny_feature_net(&d.path("net.npz"), false);
    photo(&d.path("a.png"), 40, 30);
    photo(&d.path("b.jpg"), 24, 36);
    photo(&d.path("style.png"), 50, 20);
    let run = |content: &str, style: &str, net: &str, out: &str| -> Vec<String> {
        let p = |n: &str| d.path(n).to_str().unwrap().to_string();
        let content: Vec<String> = content.split(',').map(p).collect();
        [
            "neural-art",
            "--count",
            "3",
            "--size",
            "16",
            "--content",
            &content.join(","),
            "--style",
            &p(style),
            "--features",
            &p(net),
            "--content-layer",
            "2",
            "--style-layers",
            "0,2,4",
            "--seed",
            "5",
            "-o",
            out,
        ]
        .map(String::from)
        .to_vec()
    };
    let args = run("a.png,b.jpg", "style.png", "net.npz", "art.npz");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let stderr = d.ok("sample-optimizee", &args);
    assert!(
        stderr.contains("3 neural-art problems of 16×16 px"),
        "{stderr}"
    );
    let mut npz = l2l::io::Npz::open(&d.path("art.npz")).unwrap();
    assert_eq!(npz.text("kind").unwrap(), "neural_art");
    assert_eq!(
        npz.array::<i64>("content_pixels").unwrap().shape(),
        &[3, 16, 16, 3]
    );
    assert_eq!(npz.array::<f32>("theta0").unwrap().shape(), &[3, 768]);
    // Round-robin over the photos: a, b, a.
    let files = npz.text("content_files").unwrap();
    assert!(
        files.lines().next().unwrap().ends_with("a.png")
            && files.lines().nth(1).unwrap().ends_with("b.jpg"),
        "{files}"
    );
    // The style keeps its aspect ratio: 50×20 becomes 40×16.
    assert_eq!(
        npz.array::<i64>("style_pixels").unwrap().shape(),
        &[16, 40, 3]
    );

    std::fs::write(d.path("garbage.png"), b"not an image at all").unwrap();
    let png = std::fs::read(d.path("a.png")).unwrap();
    std::fs::write(d.path("truncated.png"), &png[..png.len() / 2]).unwrap();
    image::GrayImage::from_pixel(40, 40, image::Luma([7]))
        .save(d.path("grey.png"))
        .unwrap();
    image::ImageBuffer::<image::Rgb<u16>, _>::from_pixel(40, 40, image::Rgb([7, 8, 9]))
        .save(d.path("deep.png"))
        .unwrap();
    photo(&d.path("tiny.png"), 12, 40);
    tiny_feature_net(&d.path("bad_net.npz"), true);
    for (content, style, net, expect) in [
        ("missing.png", "style.png", "net.npz", "missing.png"),
        (
            "garbage.png",
            "style.png",
            "net.npz",
            "is not a JPEG or PNG image",
        ),
        ("truncated.png", "style.png", "net.npz", "cannot be decoded"),
        ("a.png,grey.png", "style.png", "net.npz", "8-bit RGB only"),
        ("a.png", "deep.png", "net.npz", "Rgb16"),
        ("tiny.png", "style.png", "net.npz", "larger than the image"),
        (
            "a.png",
            "style.png",
            "bad_net.npz",
            "conv00_w has shape [4, 3, 3, 1]",
        ),
    ] {
        let args = run(content, style, net, "bad.npz");
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        d.fails("sample-optimizee", &args, "bad.npz", expect);
    }
}

#[test]
fn has_help() {
    assert_help("sample-optimizee");
}
