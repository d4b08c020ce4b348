//! `l2l-bench`'s rows of meta-training and evaluation throughput, on 1 and 2 threads: 128
//! quadratics, the MNIST MLP of §3.2 (15,910 coordinates), and the LSTM alone on a gradient
//! that costs nothing, each against the same run's sgemm.

use super::{epoch_seconds, mnist_settings, sgemm_gflops, time, BenchSettings, Rows};
use crate::baselines::Baseline;
use crate::datasets::Dataset;
use crate::error::{Error, Result};
use crate::evaluation::run as run_optimizer;
use crate::learned::{LearnedOptimizer, OptimizerChoice, Preprocessing};
use crate::meta::{MetaTrainConfig, MetaTrainSettings, Workspace};
use crate::problems::mlp::{Activation, MlpArchitecture, MlpSet};
use crate::problems::separable::SeparableQuadratic;
use crate::problems::{
    ProblemSet, QuadraticFamily, QuadraticSource, TrainingSource, ValueDistribution,
};
use crate::ranks::OneProcess;
use crate::rng::Rng;
use std::sync::Arc;

/// Steps of each evaluation run.
pub(super) const EVAL_STEPS: usize = 100;

/// Adds the rows, and returns sgemm's 1-thread rate (GFLOP/s) for the rows that follow.
pub fn rows(settings: &BenchSettings, out: &mut Rows) -> Result<f64> {
    let repeats = settings.repeats;
    let quad_cfg = MetaTrainSettings {
        preprocessing: Preprocessing::Scale(1.0 / 128.0),
        output_scale: 1.0,
        ..mnist_settings(128)
    }
    .check()?;
    let family = QuadraticFamily {
        dims: 10,
        distribution: ValueDistribution::Normal,
        theta0_std: 1.0,
    };
    let quad_batch = QuadraticSource::Family { family, seed: 1 }.draw(0, 128);
    let big_cfg = mnist_settings(1).check()?;
    let (big, eval_set) = mnist_sets(settings)?;
    let eval_runs = settings.eval_runs;
    // The same number of coordinates with a gradient that costs nothing: the LSTM alone.
    let stream = SeparableQuadratic::new(15_910, eval_runs, 9);
    let coordinates = big.dim();
    let (fwd_flops, bwd_flops) = big_cfg.networks().0[0].architecture.flops_per_coordinate();
    let lstm = untrained(&big_cfg, "lstm");
    let adam = OptimizerChoice::Baseline {
        kind: Baseline::Adam,
        lr: 0.01,
    };
    let big_name = format!("meta-train MNIST MLP, {coordinates} coordinates");
    let eval_name = format!("evaluate MNIST MLP, {coordinates} coordinates");
    let quad_name = "meta-train quadratic 128x10";
    // (quadratic epoch, MNIST epoch, LSTM evaluation) seconds, and sgemm, per thread count.
    let mut seconds = Vec::new();
    let mut sgemm_by_threads = Vec::new();
    for threads in [1usize, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| Error::Other(format!("starting {threads} threads: {e}")))?;
        let t = format!("{threads} thread{}", if threads > 1 { "s" } else { "" });
        let sgemm = sgemm_gflops(threads, repeats);
        sgemm_by_threads.push(sgemm);
        out.add("sgemm 1024", &format!("GFLOP/s, {t}"), sgemm, "GFLOP/s");
        let (quad, big_epoch, lstm_eval, adam_eval, lstm_single, lstm_alone) =
            pool.install(|| -> Result<_> {
                Ok((
                    epoch_seconds(&quad_cfg, &quad_batch, repeats)?,
                    epoch_seconds(&big_cfg, &big, repeats)?,
                    evaluation_seconds(&eval_set, &lstm, repeats)?,
                    evaluation_seconds(&eval_set, &adam, repeats)?,
                    evaluation_seconds(&big, &lstm, repeats)?,
                    evaluation_seconds(&stream, &lstm, repeats)?,
                ))
            })?;
        seconds.push((quad, big_epoch, lstm_eval));
        out.add(quad_name, &format!("seconds per epoch, {t}"), quad, "s");
        out.add(
            &big_name,
            &format!("seconds per epoch, {t}"),
            big_epoch,
            "s",
        );
        let coord_steps = (coordinates * 100) as f64;
        let train_gflops = coord_steps * (fwd_flops + bwd_flops) / big_epoch / 1e9;
        out.add(
            &big_name,
            &format!("GFLOP/s forward+backward, {t}"),
            train_gflops,
            "GFLOP/s",
        );
        out.add(
            &big_name,
            &format!("fraction of sgemm, {t}"),
            train_gflops / sgemm,
            "ratio",
        );
        let run_steps = (eval_runs * EVAL_STEPS) as f64;
        out.add(
            &eval_name,
            &format!("LSTM optimizee steps per second, {eval_runs} runs, {t}"),
            run_steps / lstm_eval,
            "steps/s",
        );
        out.add(
            &eval_name,
            &format!("Adam optimizee steps per second, {eval_runs} runs, {t}"),
            run_steps / adam_eval,
            "steps/s",
        );
        let single_gflops = (coordinates * EVAL_STEPS) as f64 * fwd_flops / lstm_single / 1e9;
        out.add(
            &eval_name,
            &format!("LSTM fraction of sgemm, a single run, {t}"),
            single_gflops / sgemm,
            "ratio",
        );
        let alone_gflops = run_steps * 15_910.0 * fwd_flops / lstm_alone / 1e9;
        out.add(
            "evaluate LSTM alone, 15910 coordinates",
            &format!("LSTM fraction of sgemm, {eval_runs} runs, {t}"),
            alone_gflops / sgemm,
            "ratio",
        );
        let eval_gflops = run_steps * coordinates as f64 * fwd_flops / lstm_eval / 1e9;
        out.add(
            &eval_name,
            &format!("LSTM GFLOP/s forward, {t}"),
            eval_gflops,
            "GFLOP/s",
        );
        out.add(
            &eval_name,
            &format!("LSTM fraction of sgemm, {t}"),
            eval_gflops / sgemm,
            "ratio",
        );
    }
    let (one, two) = (seconds[0], seconds[1]);
    out.add(
        &big_name,
        "speed-up 2 threads over 1",
        one.1 / two.1,
        "ratio",
    );
    out.add(
        quad_name,
        "speed-up 2 threads over 1",
        one.0 / two.0,
        "ratio",
    );
    out.add(
        &eval_name,
        "LSTM speed-up 2 threads over 1",
        one.2 / two.2,
        "ratio",
    );
    out.add(
        &big_name,
        "workspace memory",
        Workspace::new(&big_cfg, &big, &OneProcess)?.bytes() as f64 / 1048576.0,
        "MiB",
    );
    Ok(sgemm_by_threads[0])
}

/// A learned optimizer of `cfg`'s networks, freshly initialised (the speed does not depend on
/// the weights), labelled `label`.
pub(super) fn untrained(cfg: &MetaTrainConfig, label: &str) -> OptimizerChoice {
    let networks = cfg.networks();
    OptimizerChoice::Learned {
        label: label.into(),
        optimizer: Arc::new(LearnedOptimizer {
            weights: networks.init(0, crate::rng::streams::LSTM_INIT, 1.0),
            networks,
            preprocessing: cfg.preprocessing,
            output_scale: 0.1,
            base: None,
            epoch: 0,
            validation_loss: f64::NAN,
            trained_on: None,
        }),
    }
}

/// The MNIST MLP of §3.2: one run (a meta-training epoch's problem), and `eval_runs` runs at
/// once, as `evaluate` runs them (20 to 40 in the pipeline), in parallel.
pub(super) fn mnist_sets(settings: &BenchSettings) -> Result<(MlpSet, MlpSet)> {
    let data = match &settings.mnist {
        Some(p) => Dataset::load(p)?,
        // Random images of MNIST's shape: the speed does not depend on the pixels.
        None => Dataset::random(5000, 784, 10, &mut Rng::new(5, 0)),
    };
    let arch = MlpArchitecture {
        inputs: 784,
        hidden: vec![20],
        classes: 10,
        activation: Activation::Sigmoid,
    };
    let data = Arc::new(data);
    let data_path = settings.mnist.clone().unwrap_or_default();
    let big = MlpSet::sample(arch.clone(), 128, data.clone(), data_path.clone(), 1, 7)?;
    let eval_set = MlpSet::sample(arch, 128, data, data_path, settings.eval_runs, 8)?;
    Ok((big, eval_set))
}

/// Seconds per evaluation of `choice` on every run of `set` for [`EVAL_STEPS`] steps.
pub(super) fn evaluation_seconds<P: ProblemSet>(
    set: &P,
    choice: &OptimizerChoice,
    repeats: usize,
) -> Result<f64> {
    let mut failed = None;
    let seconds = time(repeats, || {
        if let Err(e) = run_optimizer(set, choice, EVAL_STEPS) {
            failed = Some(e);
        }
    });
    failed.map_or(Ok(seconds), Err)
}
