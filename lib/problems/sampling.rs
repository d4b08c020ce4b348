//! `sample-optimizee`'s draws: what every family's draw has ([`Draw`]), and what a family's
//! settings do to become a problem set ([`SampleSpec`]). The registry in spec.rs makes one
//! subcommand of each family's settings, so the binary never matches on families.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// What every family's draw has: how many problems, the seed, and the spec to write.
#[derive(clap::Args)]
pub struct Draw {
    /// Number of problems: quadratics, runs of a network, or content crops.
    #[arg(long)]
    pub count: usize,
    /// Seed of every random draw; the same seed gives the same file.
    #[arg(long)]
    pub seed: u64,
    /// Output spec (.npz).
    #[arg(short, long)]
    pub output: PathBuf,
}

impl Draw {
    /// Refuses an empty draw.
    pub fn check(&self) -> Result<()> {
        if self.count == 0 {
            return Err(Error::setting("count", "at least 1", 0));
        }
        Ok(())
    }
}

/// A family's settings for a draw (its `sample-optimizee` subcommand).
pub trait SampleSpec {
    /// The problem set drawn.
    type Set;
    fn draw(&self) -> &Draw;
    /// The files the draw reads, each with the setting that names it (none may be the output).
    fn inputs(&self) -> Vec<(&'static str, &Path)>;
    /// Checks the settings, reads the inputs and draws the problems; the text says what was
    /// drawn ("40 runs of the MLP …"), for the progress line.
    fn sample(self) -> Result<(Self::Set, String)>;
}
