//! What a step costs through the external-optimizee protocol (docs/formats.md, "External
//! optimizees"): the round trip to a Python process whose model costs almost nothing, at the
//! MNIST MLP's 15,910 parameters, beside l2l's own MLP's loss and gradient on one minibatch.

use super::{throughput, time, BenchSettings, Rows};
use crate::error::Result;
use crate::problems::external::{Connection, ExternalSet, Role};
use crate::problems::ProblemSet;
use std::time::Duration;

/// The helper's test server, run from the repository's root as `make bench` runs.
const SERVER: &str = "python/tests/fault_server.py";
const STEPS: usize = 200;

/// The Python interpreter that serves the helper's models (python/): `L2L_PYTHON` where set
/// (`make bench` and `make test` name one that imports numpy), else python3.
pub fn python_interpreter() -> String {
    std::env::var("L2L_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".into())
}

/// Whether [`python_interpreter`] runs here and imports numpy, as the helper needs.
pub fn python_has_numpy() -> bool {
    std::process::Command::new(python_interpreter())
        .args(["-c", "import numpy"])
        .output()
        .is_ok_and(|o| o.status.success())
}

pub fn external_rows(settings: &BenchSettings, out: &mut Rows) -> Result<()> {
    let python = python_interpreter();
    if !python_has_numpy() || !std::path::Path::new(SERVER).exists() {
        eprintln!(
            "l2l-bench: no {python} with numpy, or no {SERVER} here; the external rows are skipped"
        );
        return Ok(());
    }
    let (own, _) = throughput::mnist_sets(settings)?;
    let dim = own.dim();
    let command = format!("{python} {SERVER} ok 0 {dim}");
    let hello = Connection::start(&command, Duration::from_secs(60))
        .map_err(|e| crate::Error::Other(format!("{command}: {e}")))?
        .1;
    let served = ExternalSet::new(command, 60.0, &hello, Role::Test, 0, 1)?;
    let mut own_scratch = own.scratch();
    let own_s = per_step(dim, |theta, grad| {
        own.loss_and_gradient(0, 0, theta, grad, &mut own_scratch);
    });
    let mut served_scratch = served.scratch();
    let served_s = per_step(dim, |theta, grad| {
        served.loss_and_gradient(0, 0, theta, grad, &mut served_scratch);
    });
    served.fault()?;
    let task = format!("external optimizee, {dim} parameters");
    out.add(
        &task,
        "µs per step through the protocol (python3, numpy)",
        served_s * 1e6,
        "µs",
    );
    out.add(
        &task,
        "µs per step of l2l's own MNIST MLP (batch 128)",
        own_s * 1e6,
        "µs",
    );
    out.add(
        &task,
        "protocol's time over the own MLP's",
        served_s / own_s,
        "ratio",
    );
    Ok(())
}

/// Seconds per call of `step` on θ and ∇f of `dim` parameters.
fn per_step(dim: usize, mut step: impl FnMut(&mut [f32], &mut [f32])) -> f64 {
    let mut theta = vec![0.01f32; dim];
    let mut grad = vec![0.0f32; dim];
    time(3, || {
        for _ in 0..STEPS {
            step(&mut theta, &mut grad);
        }
    }) / STEPS as f64
}
