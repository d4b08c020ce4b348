//! `l2l-bench`'s rows of the conv net of §3.3 (Figure 7): one forward and backward pass over
//! 128 images, and a meta-training epoch split into the conv net's share and the rest.

use super::{epoch_seconds, mnist_settings, time, Rows};
use crate::datasets::{Dataset, Split};
use crate::error::Result;
use crate::meta::{MetaTrainSettings, Workspace};
use crate::problems::conv::{
    Cifar, ConvArchitecture, ConvImages, ConvSet, GroupAssignment, PAPER_MINIBATCH,
};
use crate::problems::ProblemSet;
use crate::ranks::OneProcess;
use crate::rng::Rng;
use std::sync::Arc;

/// Adds the rows against the same run's 1-thread `sgemm` (GFLOP/s). Runs on one thread.
pub fn conv_rows(repeats: usize, sgemm: f64, out: &mut Rows) -> Result<()> {
    let images = ConvImages {
        data: Arc::new(random_cifar()),
        labels: (0..10).collect(),
        split: Split::Train,
    };
    let conv_set = ConvSet::sample(
        ConvArchitecture::paper(10),
        GroupAssignment::ByLayer,
        images,
        PAPER_MINIBATCH,
        1,
        3,
    )?;
    let mut conv_scratch = conv_set.scratch();
    let mut theta = vec![0.0f32; conv_set.dim()];
    conv_set.initial_point(0, &mut theta);
    let mut grad = vec![0.0f32; conv_set.dim()];
    let conv_step = time(repeats, || {
        conv_set.loss_and_gradient(0, 0, &theta, &mut grad, &mut conv_scratch);
    });
    let conv_name = "CIFAR-10 conv net, 128 images, 1 thread";
    out.add(conv_name, "seconds per forward+backward", conv_step, "s");
    let gemm_flops = conv_set.architecture.gemm_flops(PAPER_MINIBATCH);
    let conv_gflops = gemm_flops / conv_step / 1e9;
    out.add(conv_name, "GEMM GFLOP/s", conv_gflops, "GFLOP/s");
    out.add(
        conv_name,
        "fraction of sgemm, 1 thread",
        conv_gflops / sgemm,
        "ratio",
    );
    out.add(
        conv_name,
        "working memory of one run",
        conv_scratch.bytes() as f64 / 1048576.0,
        "MiB",
    );
    // Figure 7's meta-training epoch: one run of 100 steps in unrolls of 20, two networks
    // (conv and fc), on one thread; timed once, since it takes tens of seconds.
    let conv_cfg = MetaTrainSettings {
        groups: conv_set.groups().into_iter().map(|g| g.name).collect(),
        ..mnist_settings(1)
    }
    .check()?;
    let conv_epoch = epoch_seconds(&conv_cfg, &conv_set, 1)?;
    let epoch_name = "meta-train CIFAR-10 conv net, 1 run of 100 steps";
    out.add(epoch_name, "seconds per epoch, 1 thread", conv_epoch, "s");
    // Where the epoch goes: the conv net's forward and backward at each step (the paper's
    // truncated BPTT takes no second derivatives, so one pass a step), and the rest, which is
    // the learned optimizer over the net's coordinates and the meta-update.
    let steps = conv_cfg.steps as f64;
    let conv_share = steps * conv_step / conv_epoch;
    out.add(
        epoch_name,
        "conv net's share of the epoch",
        conv_share,
        "ratio",
    );
    out.add(
        epoch_name,
        "learned optimizer's and meta-update's share",
        1.0 - conv_share,
        "ratio",
    );
    out.add(
        epoch_name,
        "conv GEMM FLOPs per second as a fraction of sgemm, 1 thread",
        steps * gemm_flops / conv_epoch / 1e9 / sgemm,
        "ratio",
    );
    out.add(
        epoch_name,
        "workspace memory",
        Workspace::new(&conv_cfg, &conv_set, &OneProcess)?.bytes() as f64 / 1048576.0,
        "MiB",
    );
    Ok(())
}

/// 1,000 training and 200 test images of random pixels in CIFAR-10's shape: the conv net's
/// speed does not depend on the pixels.
fn random_cifar() -> Cifar {
    let mut rng = Rng::new(6, 0);
    let train = Dataset::random(1000, 3072, 10, &mut rng);
    let test = Dataset::random(200, 3072, 10, &mut rng);
    Cifar {
        folder: "random".into(),
        train,
        test,
    }
}
