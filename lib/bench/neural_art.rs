//! `l2l-bench`'s rows of neural art (§3.4): the loss and its gradient through MobileNet v1,
//! and Figure 8's meta-training epoch.

use super::{epoch_seconds, mnist_settings, time, Rows};
use crate::error::Result;
use crate::images::CropBox;
use crate::meta::{MetaTrainSettings, Workspace};
use crate::problems::neural_art::features::FeatureNet;
use crate::problems::neural_art::loss::{gradient_flops, LossLayers, LossWeights};
use crate::problems::neural_art::{ArtSettings, Crop, NeuralArtSet, Start, Style};
use crate::problems::ProblemSet;
use crate::ranks::OneProcess;
use crate::rng::Rng;
use std::path::Path;
use std::sync::Arc;

/// Neural art (§3.4) on MobileNet v1 with docs/neural_art.md's loss: the loss and its gradient at 64
/// and 128 px against the same-run sgemm rate, and Figure 8's meta-training epoch (one crop
/// of 64 px, 128 steps in unrolls of 32), on one thread. The pixels are random: the speed
/// does not depend on them.
pub fn neural_art_rows(path: &Path, repeats: usize, sgemm: f64, out: &mut Rows) -> Result<()> {
    let net = Arc::new(FeatureNet::load(path)?);
    let mut rng = Rng::new(8, 0);
    let mut pixels = |n: usize| (0..n).map(|_| rng.below(256) as u8).collect::<Vec<_>>();
    for size in [64usize, 128] {
        let settings = ArtSettings {
            size,
            layers: LossLayers {
                content: 10,
                style: vec![0, 2, 4, 8, 12],
            },
            weights: LossWeights {
                content: 1.0,
                style: 1.0,
                tv: 5.0,
            },
            start: Start::Content,
        };
        let crop = Crop {
            file: "random".into(),
            sha256: "random".into(),
            crop: CropBox {
                x: 0,
                y: 0,
                side: size as u32,
            },
            pixels: pixels(size * size * 3),
        };
        let style = Style {
            file: "random".into(),
            sha256: "random".into(),
            width: size * 3 / 2,
            height: size,
            pixels: pixels(size * size * 9 / 2),
        };
        let set = NeuralArtSet::new(net.clone(), settings.clone(), style, vec![crop], None, 1)?;
        let mut scratch = set.scratch();
        let mut theta = vec![0.0f32; set.dim()];
        set.initial_point(0, &mut theta);
        let mut grad = vec![0.0f32; set.dim()];
        let seconds = time(repeats, || {
            set.loss_and_gradient(0, 0, &theta, &mut grad, &mut scratch);
        });
        let name = format!("neural art, MobileNet v1, {size} px, 1 thread");
        out.add(&name, "seconds per loss and gradient", seconds, "s");
        let gflops = gradient_flops(&net, &settings.layers, size, size) / seconds / 1e9;
        out.add(&name, "GFLOP/s (convolutions and Grams)", gflops, "GFLOP/s");
        out.add(
            &name,
            "fraction of sgemm, 1 thread",
            gflops / sgemm,
            "ratio",
        );
        if size == 64 {
            let cfg = MetaTrainSettings {
                steps: 128,
                unroll: 32,
                ..mnist_settings(1)
            }
            .check()?;
            let task = "meta-train neural art, 1 crop of 64 px, 128 steps";
            out.add(
                task,
                "seconds per epoch, 1 thread",
                epoch_seconds(&cfg, &set, 1)?,
                "s",
            );
            out.add(
                task,
                "workspace memory",
                Workspace::new(&cfg, &set, &OneProcess)?.bytes() as f64 / 1048576.0,
                "MiB",
            );
        }
    }
    Ok(())
}
