//! `l2l-bench` (`make bench`): how close meta-training and evaluation come to this machine's
//! FLOP limit. Prints a table and writes a parquet file with columns task, measure, value, unit.

use anyhow::Context;
use clap::Parser;
use l2l::baselines::Baseline;
use l2l::datasets::Dataset;
use l2l::evaluation::run as run_optimizer;
use l2l::io::{describe, is_stdio};
use l2l::io::{write_table, Column};
use l2l::kernels::isa::KERNEL_ISA;
use l2l::kernels::machine;
use l2l::learned::{Architecture, LearnedOptimizer, Networks, OptimizerChoice, Preprocessing};
use l2l::meta::{MetaTrainConfig, MetaTrainer, Workspace};
use l2l::problems::conv::{
    Cifar, ConvArchitecture, ConvImages, ConvSet, GroupAssignment, PAPER_MINIBATCH,
};
use l2l::problems::mlp::{Activation, MlpArchitecture, MlpSet};
use l2l::problems::separable::SeparableQuadratic;
use l2l::problems::{
    ProblemSet, QuadraticFamily, QuadraticSource, TrainingSource, ValueDistribution,
};
use l2l::ranks::OneProcess;
use ndarray::Array2;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

// Meta-training across the ranks of an MPI job.
#[path = "bench/across_ranks.rs"]
mod across_ranks;
use across_ranks::across_ranks;
// The LSTM's layer kernel alone, and the bound its gates set.
#[path = "bench/lstm_kernel.rs"]
mod lstm_kernel;
use lstm_kernel::lstm_kernel_rows;
// The matrix products against OpenBLAS.
#[path = "bench/products.rs"]
mod products;
use products::product_rows;

/// Benchmark meta-training and evaluation throughput against the same-run sgemm rate.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// Results table (parquet); `-` writes it to standard output (the text table then goes
    /// to standard error).
    #[arg(short, long, default_value = "out/bench/results.parquet")]
    output: PathBuf,
    /// MNIST data for the MNIST-sized task (the real MLP 784-20-10, 15,910 coordinates);
    /// without it the MLP trains on random images of the same shape.
    #[arg(long)]
    data: Option<PathBuf>,
    /// The neural-art feature network (shared/data/neural_art/mobilenet_v1/mobilenet_v1.npz);
    /// without it the neural-art rows are skipped.
    #[arg(long)]
    features: Option<PathBuf>,
    /// Runs evaluated together in the evaluation measurement, as `evaluate` does with a spec.
    #[arg(long = "eval-runs", default_value_t = 8)]
    eval_runs: usize,
    /// Timed repetitions of each measurement (the median is reported).
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// The folder of binaries built with the `mpi` feature (`make mpi`: target/mpi/release):
    /// adds meta-training under `mpirun -np 1` and `-np 2`, one thread per rank, with the
    /// ratio, and checks that both write the same checkpoint. Its scratch files go beside
    /// --output.
    #[arg(long = "mpi-bin")]
    mpi_bin: Option<PathBuf>,
}

struct Row {
    task: String,
    measure: String,
    value: f64,
    unit: String,
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Median seconds of `f` over `repeats` runs, after one warm-up run.
fn time(repeats: usize, mut f: impl FnMut()) -> f64 {
    f();
    median(
        (0..repeats)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn sgemm_gflops(threads: usize, repeats: usize) -> f64 {
    l2l::init_blas_threads(threads);
    let n = 1024;
    let a = Array2::<f32>::from_shape_fn((n, n), |(i, j)| ((i * 7 + j * 3) % 13) as f32 * 0.01);
    let b = a.t().to_owned();
    let mut c = Array2::<f32>::zeros((n, n));
    let secs = time(repeats.max(5), || {
        ndarray::linalg::general_mat_mul(1.0, &a, &b, 0.0, &mut c)
    });
    l2l::init_blas_threads(1);
    2.0 * (n as f64).powi(3) / secs / 1e9
}

fn peak_rss_bytes() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb * 1024.0)
        .unwrap_or(f64::NAN)
}

/// The MNIST recipe's shape of training (§3.2): log/sign input, output scale 0.1.
fn config(batch: usize) -> MetaTrainConfig {
    MetaTrainConfig {
        preprocessing: Preprocessing::LogSign { p: 10.0 },
        output_scale: 0.1,
        batch,
        epochs: u64::MAX,
        eval_every: 1,
        ..MetaTrainConfig::default()
    }
}

/// Seconds per meta-training epoch on `batch`.
fn epoch_seconds<P: ProblemSet>(cfg: &MetaTrainConfig, batch: &P, repeats: usize) -> f64 {
    let mut trainer = MetaTrainer::new(cfg.clone()).expect("valid config");
    let mut ws =
        Workspace::new(cfg, batch, &OneProcess).expect("one network serves every parameter");
    time(repeats, || {
        trainer.train_epoch(batch, &mut ws, &OneProcess);
    })
}

fn run(args: Args) -> anyhow::Result<()> {
    l2l::init_blas_threads(1);
    // The default output's folder is made for the user; the output is claimed before the
    // minutes of measuring, so a bad --output fails at once.
    match args.output.parent() {
        Some(dir) if !is_stdio(&args.output) && !dir.as_os_str().is_empty() => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the folder {}", dir.display()))?
        }
        _ => {}
    }
    let mut inputs = Vec::new();
    inputs.extend(args.data.as_deref().map(|p| ("--data", p)));
    let _claims = l2l::cli::claim_outputs(&[("--output", args.output.as_path())], &inputs)?;
    let mut rows: Vec<Row> = Vec::new();
    let mut add = |task: &str, measure: &str, value: f64, unit: &str| {
        rows.push(Row {
            task: task.into(),
            measure: measure.into(),
            value,
            unit: unit.into(),
        })
    };
    let quad_cfg = MetaTrainConfig {
        preprocessing: Preprocessing::Scale(1.0 / 128.0),
        output_scale: 1.0,
        ..config(128)
    };
    let family = QuadraticFamily {
        dims: 10,
        distribution: ValueDistribution::Normal,
        theta0_std: 1.0,
    };
    let quad_batch = QuadraticSource::Family { family, seed: 1 }.draw(0, 128);
    let big_cfg = config(1);
    let data = match &args.data {
        Some(p) => Dataset::load(p)?,
        None => {
            let mut rng = l2l::rng::Rng::new(5, 0);
            let images = ndarray::Array2::from_shape_fn((5000, 784), |_| rng.uniform() as f32);
            Dataset {
                images,
                labels: (0..5000).map(|i| (i % 10) as u8).collect(),
                classes: 10,
                sha256: "random".into(),
                split: l2l::datasets::Split::All,
            }
        }
    };
    let arch = MlpArchitecture {
        inputs: 784,
        hidden: vec![20],
        classes: 10,
        activation: Activation::Sigmoid,
    };
    let data = Arc::new(data);
    let data_path = args.data.clone().unwrap_or_default();
    let big = MlpSet::sample(arch.clone(), 128, data.clone(), data_path.clone(), 1, 7)?;
    // `evaluate` runs many runs at once (20 to 40 in the pipeline), in parallel.
    let eval_set = MlpSet::sample(arch, 128, data, data_path, args.eval_runs, 8)?;
    // The same number of coordinates with a gradient that costs nothing: the LSTM alone.
    let stream = SeparableQuadratic::new(15_910, args.eval_runs, 9);
    let coordinates = big.dim();
    let shape = big_cfg.shape();
    let (fwd_flops, bwd_flops) = shape.flops_per_coordinate();
    let learned = Arc::new(LearnedOptimizer {
        networks: Networks::single(Arc::new(shape)),
        weights: shape.init(0, l2l::rng::streams::LSTM_INIT, 1.0),
        preprocessing: big_cfg.preprocessing,
        output_scale: 0.1,
        base: None,
        epoch: 0,
        validation_loss: f64::NAN,
        trained_on: None,
    });
    let lstm = OptimizerChoice::Learned {
        label: "lstm".into(),
        optimizer: learned,
    };
    let adam = OptimizerChoice::Baseline {
        kind: Baseline::Adam,
        lr: 0.01,
    };
    let eval_steps = 100;
    let mut epoch_by_threads = Vec::new();
    let mut sgemm_by_threads = Vec::new();
    for threads in [1usize, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()?;
        let t = format!("{threads} thread{}", if threads > 1 { "s" } else { "" });
        let sgemm = sgemm_gflops(threads, args.repeats);
        sgemm_by_threads.push(sgemm);
        add("sgemm 1024", &format!("GFLOP/s, {t}"), sgemm, "GFLOP/s");
        let (quad, big_epoch, lstm_eval, adam_eval, lstm_single, lstm_alone) = pool.install(|| {
            (
                epoch_seconds(&quad_cfg, &quad_batch, args.repeats),
                epoch_seconds(&big_cfg, &big, args.repeats),
                time(args.repeats, || {
                    run_optimizer(&eval_set, &lstm, eval_steps)
                        .expect("one network serves every parameter");
                }),
                time(args.repeats, || {
                    run_optimizer(&eval_set, &adam, eval_steps)
                        .expect("one network serves every parameter");
                }),
                time(args.repeats, || {
                    run_optimizer(&big, &lstm, eval_steps)
                        .expect("one network serves every parameter");
                }),
                time(args.repeats, || {
                    run_optimizer(&stream, &lstm, eval_steps)
                        .expect("one network serves every parameter");
                }),
            )
        });
        epoch_by_threads.push((quad, big_epoch, lstm_eval));
        let big_name = format!("meta-train MNIST MLP, {coordinates} coordinates");
        add(
            "meta-train quadratic 128x10",
            &format!("seconds per epoch, {t}"),
            quad,
            "s",
        );
        add(
            &big_name,
            &format!("seconds per epoch, {t}"),
            big_epoch,
            "s",
        );
        let coord_steps = (coordinates * 100) as f64;
        let train_gflops = coord_steps * (fwd_flops + bwd_flops) / big_epoch / 1e9;
        add(
            &big_name,
            &format!("GFLOP/s forward+backward, {t}"),
            train_gflops,
            "GFLOP/s",
        );
        add(
            &big_name,
            &format!("fraction of sgemm, {t}"),
            train_gflops / sgemm,
            "ratio",
        );
        let eval_name = format!("evaluate MNIST MLP, {coordinates} coordinates");
        let run_steps = (args.eval_runs * eval_steps) as f64;
        add(
            &eval_name,
            &format!(
                "LSTM optimizee steps per second, {} runs, {t}",
                args.eval_runs
            ),
            run_steps / lstm_eval,
            "steps/s",
        );
        add(
            &eval_name,
            &format!(
                "Adam optimizee steps per second, {} runs, {t}",
                args.eval_runs
            ),
            run_steps / adam_eval,
            "steps/s",
        );
        let single_gflops = (coordinates * eval_steps) as f64 * fwd_flops / lstm_single / 1e9;
        add(
            &eval_name,
            &format!("LSTM fraction of sgemm, a single run, {t}"),
            single_gflops / sgemm,
            "ratio",
        );
        let alone_gflops = run_steps * 15_910.0 * fwd_flops / lstm_alone / 1e9;
        add(
            "evaluate LSTM alone, 15910 coordinates",
            &format!("LSTM fraction of sgemm, {} runs, {t}", args.eval_runs),
            alone_gflops / sgemm,
            "ratio",
        );
        let eval_gflops = run_steps * coordinates as f64 * fwd_flops / lstm_eval / 1e9;
        add(
            &eval_name,
            &format!("LSTM GFLOP/s forward, {t}"),
            eval_gflops,
            "GFLOP/s",
        );
        add(
            &eval_name,
            &format!("LSTM fraction of sgemm, {t}"),
            eval_gflops / sgemm,
            "ratio",
        );
    }
    lstm_kernel_rows(shape, sgemm_by_threads[0], args.repeats, &mut add);
    product_rows(args.repeats, &mut add);
    // The conv net of §3.3 (Figure 7): one forward and backward pass over 128 images.
    let images = ConvImages {
        data: Arc::new(random_cifar()),
        labels: (0..10).collect(),
        split: l2l::datasets::Split::Train,
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
    let conv_step = time(args.repeats, || {
        conv_set.loss_and_gradient(0, 0, &theta, &mut grad, &mut conv_scratch);
    });
    let conv_name = "CIFAR-10 conv net, 128 images, 1 thread";
    add(conv_name, "seconds per forward+backward", conv_step, "s");
    let conv_gflops = conv_set.architecture.gemm_flops(PAPER_MINIBATCH) / conv_step / 1e9;
    add(conv_name, "GEMM GFLOP/s", conv_gflops, "GFLOP/s");
    add(
        conv_name,
        "fraction of sgemm, 1 thread",
        conv_gflops / sgemm_by_threads[0],
        "ratio",
    );
    add(
        conv_name,
        "working memory of one run",
        conv_scratch.bytes() as f64 / 1048576.0,
        "MiB",
    );
    // Figure 7's meta-training epoch: one run of 100 steps in unrolls of 20, two networks
    // (conv and fc), on one thread; timed once, since it takes tens of seconds.
    let conv_cfg = MetaTrainConfig {
        groups: conv_set.groups().into_iter().map(|g| g.name).collect(),
        ..config(1)
    };
    conv_cfg.validate()?;
    let conv_epoch = epoch_seconds(&conv_cfg, &conv_set, 1);
    let epoch_name = "meta-train CIFAR-10 conv net, 1 run of 100 steps";
    add(epoch_name, "seconds per epoch, 1 thread", conv_epoch, "s");
    // Where the epoch goes: the conv net's forward and backward at each step (the paper's
    // truncated BPTT takes no second derivatives, so one pass a step), and the rest, which is
    // the learned optimizer over the net's coordinates and the meta-update.
    let steps = conv_cfg.steps as f64;
    let conv_share = steps * conv_step / conv_epoch;
    add(
        epoch_name,
        "conv net's share of the epoch",
        conv_share,
        "ratio",
    );
    add(
        epoch_name,
        "learned optimizer's and meta-update's share",
        1.0 - conv_share,
        "ratio",
    );
    add(
        epoch_name,
        "conv GEMM FLOPs per second as a fraction of sgemm, 1 thread",
        steps * conv_set.architecture.gemm_flops(PAPER_MINIBATCH)
            / conv_epoch
            / 1e9
            / sgemm_by_threads[0],
        "ratio",
    );
    add(
        "meta-train CIFAR-10 conv net, 1 run of 100 steps",
        "workspace memory",
        Workspace::new(&conv_cfg, &conv_set, &OneProcess)?.bytes() as f64 / 1048576.0,
        "MiB",
    );
    match &args.features {
        Some(path) => neural_art_rows(path, args.repeats, sgemm_by_threads[0], &mut add)?,
        None => eprintln!("l2l-bench: no --features; the neural-art rows are skipped"),
    }
    let big_speedup = epoch_by_threads[0].1 / epoch_by_threads[1].1;
    add(
        &format!("meta-train MNIST MLP, {coordinates} coordinates"),
        "speed-up 2 threads over 1",
        big_speedup,
        "ratio",
    );
    add(
        "meta-train quadratic 128x10",
        "speed-up 2 threads over 1",
        epoch_by_threads[0].0 / epoch_by_threads[1].0,
        "ratio",
    );
    add(
        &format!("evaluate MNIST MLP, {coordinates} coordinates"),
        "LSTM speed-up 2 threads over 1",
        epoch_by_threads[0].2 / epoch_by_threads[1].2,
        "ratio",
    );
    let ws_bytes = Workspace::new(&big_cfg, &big, &OneProcess)?.bytes() as f64;
    add(
        &format!("meta-train MNIST MLP, {coordinates} coordinates"),
        "workspace memory",
        ws_bytes / 1048576.0,
        "MiB",
    );
    add(
        "process",
        "peak resident memory",
        peak_rss_bytes() / 1048576.0,
        "MiB",
    );
    if let Some(bin) = &args.mpi_bin {
        let scratch = match args.output.parent() {
            Some(dir) if !is_stdio(&args.output) && !dir.as_os_str().is_empty() => dir.join("mpi"),
            _ => PathBuf::from("bench-mpi"),
        };
        across_ranks(bin, args.data.as_deref(), &scratch, &mut add)?;
    }

    // The table goes to standard output, unless the parquet results go there.
    let to_stdout = is_stdio(&args.output);
    let (cpu, blas_kernel) = (machine::cpu_model(), machine::blas_kernel());
    let mut table = format!(
        "CPU: {cpu} ({}); kernels built for {KERNEL_ISA}; OpenBLAS kernel {blas_kernel} \
         (chosen by {})\n",
        machine::vector_extensions().join(" "),
        machine::blas_kernel_chooser()
    );
    table += &format!("{:<34} {:<42} {:>12} unit\n", "task", "measure", "value");
    for r in &rows {
        table += &format!(
            "{:<34} {:<42} {:>12.4} {}\n",
            r.task, r.measure, r.value, r.unit
        );
    }
    if to_stdout {
        eprint!("{table}");
    } else {
        print!("{table}");
    }
    write_table(
        &args.output,
        vec![
            (
                "task",
                Column::Utf8(rows.iter().map(|r| r.task.clone()).collect()),
            ),
            (
                "measure",
                Column::Utf8(rows.iter().map(|r| r.measure.clone()).collect()),
            ),
            (
                "value",
                Column::Float64(rows.iter().map(|r| Some(r.value)).collect()),
            ),
            (
                "unit",
                Column::Utf8(rows.iter().map(|r| r.unit.clone()).collect()),
            ),
            // Which machine and which kernels each row measured (docs/formats.md).
            ("cpu", Column::Utf8(vec![cpu; rows.len()])),
            (
                "kernel_isa",
                Column::Utf8(vec![KERNEL_ISA.to_string(); rows.len()]),
            ),
            ("blas_kernel", Column::Utf8(vec![blas_kernel; rows.len()])),
        ],
    )?;
    eprintln!("l2l-bench: wrote {}", describe(&args.output, true));
    Ok(())
}

/// Neural art (§3.4) on MobileNet v1 with docs/neural_art.md's loss: the loss and its gradient at 64
/// and 128 px against the same-run sgemm rate, and Figure 8's meta-training epoch (one crop
/// of 64 px, 128 steps in unrolls of 32), on one thread. The pixels are random: the speed
/// does not depend on them.
fn neural_art_rows(
    path: &std::path::Path,
    repeats: usize,
    sgemm: f64,
    add: &mut impl FnMut(&str, &str, f64, &str),
) -> anyhow::Result<()> {
    use l2l::problems::neural_art::features::FeatureNet;
    use l2l::problems::neural_art::loss::{gradient_flops, LossLayers, LossWeights};
    use l2l::problems::neural_art::{ArtSettings, Crop, NeuralArtSet, Start, Style};
    let net = Arc::new(FeatureNet::load(path)?);
    let mut rng = l2l::rng::Rng::new(8, 0);
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
            crop: l2l::images::CropBox {
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
        add(&name, "seconds per loss and gradient", seconds, "s");
        let gflops = gradient_flops(&net, &settings.layers, size, size) / seconds / 1e9;
        add(&name, "GFLOP/s (convolutions and Grams)", gflops, "GFLOP/s");
        add(
            &name,
            "fraction of sgemm, 1 thread",
            gflops / sgemm,
            "ratio",
        );
        if size == 64 {
            let cfg = MetaTrainConfig {
                steps: 128,
                unroll: 32,
                ..config(1)
            };
            cfg.validate()?;
            let task = "meta-train neural art, 1 crop of 64 px, 128 steps";
            add(
                task,
                "seconds per epoch, 1 thread",
                epoch_seconds(&cfg, &set, 1),
                "s",
            );
            add(
                task,
                "workspace memory",
                Workspace::new(&cfg, &set, &OneProcess)?.bytes() as f64 / 1048576.0,
                "MiB",
            );
        }
    }
    Ok(())
}

/// 1,000 training and 200 test images of random pixels in CIFAR-10's shape: the conv net's
/// speed does not depend on the pixels.
fn random_cifar() -> Cifar {
    let mut rng = l2l::rng::Rng::new(6, 0);
    let mut images = |n: usize| Dataset {
        images: ndarray::Array2::from_shape_fn((n, 3072), |_| rng.uniform() as f32),
        labels: (0..n).map(|i| (i % 10) as u8).collect(),
        classes: 10,
        sha256: "random".into(),
        split: l2l::datasets::Split::All,
    };
    Cifar {
        folder: "random".into(),
        train: images(1000),
        test: images(200),
    }
}

fn main() -> ExitCode {
    // The sgemm reference runs the kernel the CPU can run best, not a generic fallback.
    if let Err(e) = machine::choose_blas_kernel() {
        eprintln!("l2l-bench: could not choose OpenBLAS's kernel ({e}); it keeps its own");
    }
    match l2l::cli::parse_args::<Args>("l2l-bench") {
        Ok(args) => l2l::cli::finish("l2l-bench", run(args)),
        Err(code) => code,
    }
}
