//! `l2l-bench`'s rows of meta-training across the ranks of `mpirun` (docs/performance.md,
//! "Across processes (MPI)").

use super::Rows;
use crate::error::{Error, Result};
use std::path::Path;

/// Meta-training as K = 1 and K = 2 ranks of `mpirun`, one thread each (and one process of 2
/// threads beside them), with the binaries in `bin`: seconds per epoch from each run's
/// training log, the speed-up of K = 2, and whether the checkpoints are the same bytes.
pub fn across_ranks(
    bin: &Path,
    mnist: Option<&Path>,
    scratch: &Path,
    rows: &mut Rows,
) -> Result<()> {
    use std::process::Command;
    std::fs::create_dir_all(scratch).map_err(|e| Error::io(scratch, e))?;
    let path = |name: &str| scratch.join(name).to_string_lossy().into_owned();
    let sample = |args: &[&str]| -> Result<()> {
        let program = bin.join("sample-optimizee");
        let out = Command::new(&program)
            .args(args)
            .output()
            .map_err(|e| Error::io(&program, e))?;
        if !out.status.success() {
            return Err(Error::Other(format!(
                "sample-optimizee failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(())
    };
    // Open MPI refuses to start as root (containers, CI) unless told to; /proc/self is owned
    // by this process's user.
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid() == 0
    });
    // (task, training spec, flags): the quadratic's batch of 128 makes 8 shards, MNIST's
    // batch of 2 problems 2.
    let mut tasks = vec![(
        "meta-train quadratic, mpirun",
        path("quadratic.npz"),
        "--batch 128 --steps 100 --unroll 20 --epochs 60",
    )];
    sample(&[
        "quadratic",
        "--count",
        "128",
        "--seed",
        "1",
        "-o",
        &tasks[0].1,
    ])?;
    if let Some(data) = mnist {
        let spec = path("mnist.npz");
        let data = data.to_string_lossy();
        sample(&[
            "mlp", "--data", &data, "--count", "1", "--seed", "11", "-o", &spec,
        ])?;
        tasks.push((
            "meta-train MNIST MLP, mpirun",
            spec,
            "--batch 2 --steps 100 --unroll 20 --epochs 6 --preprocessing log-sign --p 10 \
             --output-scale 0.1",
        ));
    }
    for (task, spec, flags) in tasks {
        // (ranks, threads per rank)
        let mut seconds = Vec::new();
        let mut checkpoints = Vec::new();
        for (ranks, threads) in [(1, 1), (2, 1), (1, 2)] {
            let out = path(&format!("k{ranks}t{threads}.npz"));
            let mut command = Command::new("mpirun");
            // Unbound, so that one rank's 2 threads get 2 cores (Open MPI binds 1 or 2 ranks
            // to a core each by default).
            command.args(["-np", &ranks.to_string(), "--bind-to", "none"]);
            if root {
                command.arg("--allow-run-as-root");
            }
            command
                .arg(bin.join("meta-train"))
                .args(["--train", &spec, "--threads", &threads.to_string()])
                .args(flags.split_whitespace())
                .args(["--restart", "-o", &out]);
            let done = command.output().map_err(|e| {
                Error::Other(format!(
                    "running mpirun: {e} (apt-get install openmpi-bin, or drop --mpi-bin)"
                ))
            })?;
            if !done.status.success() {
                return Err(Error::Other(format!(
                    "mpirun -np {ranks} meta-train failed: {}",
                    String::from_utf8_lossy(&done.stderr)
                )));
            }
            let log = crate::training_log::log_path(Path::new(&out)).expect("a file in a folder");
            let (log, _) = crate::training_log::TrainingLog::read(&log)?;
            let (first, last) = (&log.rows[0], &log.rows[log.rows.len() - 1]);
            // From the end of the first epoch: start-up, MPI's included, is left out.
            let per_epoch = (last.seconds - first.seconds) / (last.epoch - first.epoch) as f64;
            rows.add(
                task,
                &format!("seconds per epoch, K = {ranks} × {threads} thread"),
                per_epoch,
                "s",
            );
            seconds.push(per_epoch);
            checkpoints.push(std::fs::read(&out).map_err(|e| Error::io(&out, e))?);
        }
        rows.add(
            task,
            "speed-up of K = 2 over K = 1",
            seconds[0] / seconds[1],
            "×",
        );
        rows.add(
            task,
            "K = 2 over one process of 2 threads (time ratio)",
            seconds[1] / seconds[2],
            "×",
        );
        let same = checkpoints.windows(2).all(|w| w[0] == w[1]);
        rows.add(
            task,
            "checkpoints identical (1 = yes)",
            f64::from(u8::from(same)),
            "",
        );
    }
    Ok(())
}
