//! `sample-optimizee external`: a spec of problems served by another process.

use super::{Connection, ExternalSet, Role};
use crate::error::{Error, Result};
use crate::problems::sampling::{Draw, SampleSpec};
use std::path::Path;
use std::time::Duration;

/// Problems served by a command that speaks l2l's optimizee protocol over its standard input
/// and output (docs/formats.md, "External optimizees"; python/ has a helper). The command is
/// started once to read its handshake, and the spec records it with the role, the first
/// problem (`--seed`), `--count`, the parameter count and groups. `meta-train` and `evaluate`
/// start it again, once per thread.
#[derive(clap::Args)]
pub struct ExternalSampling {
    /// The command, run with `sh -c` from the folder l2l runs in (e.g. "python3 model.py").
    #[arg(long)]
    pub command: String,
    /// Which of the process's problems: train (meta-training), validation (early stopping and
    /// tuning) or test (held out from both). --seed is the first problem's index.
    #[arg(long, value_parser = ["train", "validation", "test"])]
    pub role: String,
    /// The longest a request may wait for its answer, in seconds.
    #[arg(long, default_value_t = 60.0)]
    pub timeout: f64,
    #[command(flatten)]
    pub draw: Draw,
}

impl SampleSpec for ExternalSampling {
    type Set = ExternalSet;

    fn draw(&self) -> &Draw {
        &self.draw
    }

    fn inputs(&self) -> Vec<(&'static str, &Path)> {
        Vec::new()
    }

    fn sample(self) -> Result<(ExternalSet, String)> {
        self.draw.check()?;
        let role = Role::parse(&self.role).expect("clap allows only the roles");
        // Before the command is started.
        super::check_timeout(self.timeout)?;
        let (_process, hello) =
            Connection::start(&self.command, Duration::from_secs_f64(self.timeout)).map_err(
                |why| {
                    Error::Other(format!(
                        "external optimizee '{}' (handshake): {why}",
                        self.command
                    ))
                },
            )?;
        let set = ExternalSet::new(
            self.command.clone(),
            self.timeout,
            &hello,
            role,
            self.draw.seed,
            self.draw.count,
        )?;
        let groups: Vec<&str> = set.groups.iter().map(|g| g.name.as_str()).collect();
        let what = format!(
            "{} {} problems from index {} ({} parameters; groups {}) of `{}`",
            set.count,
            role.name(),
            set.seed,
            hello.dim,
            groups.join(", "),
            self.command
        );
        Ok((set, what))
    }
}
