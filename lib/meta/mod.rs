//! Meta-training a learned optimizer (§2, §3; docs/method.md): minimise eq. (3) over the
//! networks' weights φ by truncated BPTT and Adam.
//!
//! - [`config`]: the settings, checked once ([`MetaTrainParams::check`]).
//! - [`objective`]: eq. (3), its weights w_t and its log form.
//! - `bptt`: one truncated unroll forward and its meta-gradient back; `second_order` the
//!   same with the Hessian terms, `imitation` imitation of a hand-designed rule.
//! - [`es`]: evolution strategies as the meta-gradient.
//! - [`trainer`]: the run's state and one epoch; [`executor`]: the loop over epochs,
//!   validation, checkpoints and resume.
//! - [`agreement`]: how far BPTT's meta-gradient agrees with the true one.
//!
//! Beyond the paper (each off by default): the log meta-loss, imitation, a base rule under the
//! network, second-order and ES meta-gradients, curricula and late meta-losses.

pub mod agreement;
pub(crate) mod bptt;
pub mod config;
pub mod es;
pub mod executor;
mod fingerprint;
pub(crate) mod imitation;
pub mod objective;
pub(crate) mod second_order;
pub mod trainer;
pub mod workspace;

#[cfg(test)]
mod tests;

pub use agreement::GradientAgreement;
pub use config::{
    EsScope, Imitation, ImitationLoss, MetaGradient, MetaLoss, MetaTrainConfig, MetaTrainParams,
    MetaTrainSettings, Rollout, RuleRequest, TunedRate,
};
pub use executor::{resume_path, train, Progress, Stopping};
pub use trainer::{EpochReport, MetaTrainer};
pub use workspace::{check_ranks, Workspace};
