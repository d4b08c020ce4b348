//! The tiny inputs of §3.3 and §3.4: a fake CIFAR-10 folder, a small feature network in
//! MobileNet's layout, photos, and the conv and neural-art specs made from them.

use super::*;
use std::path::{Path, PathBuf};

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
