//! Learned optimizers (§2): an [`Architecture`] applied to every coordinate, one network per
//! parameter group, the input and output processing around it, eq. (1)'s update
//! ([`step::LearnedStep`]) and the checkpoint file ([`checkpoint`]).

pub mod architecture;
pub mod checkpoint;
pub mod choice;
pub mod gac;
pub mod lstm;
pub mod ntm;
pub mod optimizer;
pub mod preprocessing;
pub mod registry;
pub mod serve;
pub mod step;

pub use architecture::{Architecture, CoordinateTape, TapeRows};
pub use choice::{LearnedRule, OptimizerChoice};
pub use optimizer::{LearnedOptimizer, Network, Networks, ALL_PARAMETERS};
pub use preprocessing::Preprocessing;
pub use registry::ArchitectureChoice;
