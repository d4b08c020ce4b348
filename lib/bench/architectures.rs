//! `l2l-bench`'s rows for Appendix D's architectures beside the LSTM's, on one thread:
//! meta-training on 128 quadratics, and meta-training and evaluation on the MNIST MLP of §3.2
//! where the architecture fits (NTM-BFGS's n × n memory does not), each as optimizee steps per
//! second and, on MNIST, as a fraction of the same run's sgemm.

use super::throughput::{evaluation_seconds, mnist_sets, untrained, EVAL_STEPS};
use super::{epoch_seconds, mnist_settings, BenchSettings, Rows};
use crate::error::{Error, Result};
use crate::learned::ntm::MemoryKind;
use crate::learned::{ArchitectureChoice, Preprocessing};
use crate::meta::MetaTrainSettings;
use crate::problems::{
    ProblemSet, QuadraticFamily, QuadraticSource, TrainingSource, ValueDistribution,
};

/// Appendix D's defaults (`meta-train --architecture`), and the LSTM to compare with.
const ARCHITECTURES: [(&str, ArchitectureChoice); 4] = [
    ("lstm", ArchitectureChoice::Lstm),
    ("lstm-gac", ArchitectureChoice::LstmGac { averaging: 2 }),
    (
        "ntm-bfgs",
        ArchitectureChoice::Ntm {
            averaging: 2,
            reads: 1,
            writes: 3,
            memory: MemoryKind::Full,
        },
    ),
    (
        "ntm-lbfgs",
        ArchitectureChoice::Ntm {
            averaging: 2,
            reads: 1,
            writes: 3,
            memory: MemoryKind::History(5),
        },
    ),
];

/// Adds the rows; `sgemm` is the same run's 1-thread rate (GFLOP/s).
pub fn architecture_rows(settings: &BenchSettings, sgemm: f64, out: &mut Rows) -> Result<()> {
    let repeats = settings.repeats;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .map_err(|e| Error::Other(format!("starting a thread: {e}")))?;
    let family = QuadraticFamily {
        dims: 10,
        distribution: ValueDistribution::Normal,
        theta0_std: 1.0,
    };
    let quads = QuadraticSource::Family { family, seed: 1 }.draw(0, 128);
    let (big, eval_set) = mnist_sets(settings)?;
    for (name, architecture) in ARCHITECTURES {
        let settings_for = |batch| MetaTrainSettings {
            architecture,
            preprocessing: Preprocessing::Scale(1.0 / 128.0),
            ..mnist_settings(batch)
        };
        let quad_cfg = settings_for(128).check()?;
        let quad = pool.install(|| epoch_seconds(&quad_cfg, &quads, repeats))?;
        out.add(
            &format!("meta-train quadratic 128x10, {name}"),
            "optimizee steps per second, 1 thread",
            (quad_cfg.batch * quad_cfg.steps) as f64 / quad,
            "steps/s",
        );
        let big_cfg = mnist_settings(1);
        let big_cfg = MetaTrainSettings {
            architecture,
            ..big_cfg
        }
        .check()?;
        let networks = big_cfg.networks();
        let fits = networks.0[0]
            .architecture
            .check_rows(crate::learned::TapeRows::new(1, big.dim()))
            .is_ok();
        if !fits {
            eprintln!("l2l-bench: {name} does not fit the MNIST MLP; its MNIST rows are skipped");
            continue;
        }
        let (fwd, bwd) = networks.0[0].architecture.flops_per_coordinate();
        let mnist_name = format!("MNIST MLP, {} coordinates, {name}", big.dim());
        let epoch = pool.install(|| epoch_seconds(&big_cfg, &big, repeats))?;
        let coordinate_steps = (big.dim() * big_cfg.steps) as f64;
        out.add(
            &format!("meta-train {mnist_name}"),
            "optimizee steps per second, 1 thread",
            big_cfg.steps as f64 / epoch,
            "steps/s",
        );
        out.add(
            &format!("meta-train {mnist_name}"),
            "fraction of sgemm, 1 thread",
            coordinate_steps * (fwd + bwd) / epoch / 1e9 / sgemm,
            "ratio",
        );
        let learned = untrained(&big_cfg, name);
        let seconds = pool.install(|| evaluation_seconds(&eval_set, &learned, repeats))?;
        let runs = eval_set.count();
        let steps = (runs * EVAL_STEPS) as f64;
        out.add(
            &format!("evaluate {mnist_name}"),
            &format!("optimizee steps per second, {runs} runs, 1 thread"),
            steps / seconds,
            "steps/s",
        );
        out.add(
            &format!("evaluate {mnist_name}"),
            &format!("fraction of sgemm, {runs} runs, 1 thread"),
            steps * big.dim() as f64 * fwd / seconds / 1e9 / sgemm,
            "ratio",
        );
    }
    Ok(())
}
