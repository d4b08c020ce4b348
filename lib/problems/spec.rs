//! Spec files of every problem kind (docs/formats.md, "Specs"): each records its `kind` and
//! `format_version`; a spec written before those fields existed (or by numpy) is recognised by
//! the names of its arrays. [`Spec::visit`] and [`Spec::visit_source`] are the one place that
//! turns a kind into a concrete problem set, so no binary matches on kinds itself.

use super::conv::{ConvSet, ConvSource};
use super::mlp::{MlpSet, MlpSource};
use super::neural_art::{NeuralArtSet, NeuralArtSource};
use super::{ProblemSet, QuadraticSet, QuadraticSource, TrainingSource};
use crate::error::{Error, Result};
use crate::io::{describe, Npz};
use std::path::{Path, PathBuf};

pub use super::recorded::SPEC_VERSION;

/// A spec file of any problem kind.
pub enum Spec {
    Quadratic(QuadraticSet),
    Mlp(MlpSet),
    Conv(ConvSet),
    NeuralArt(NeuralArtSet),
}

/// What runs on a problem set of any kind (evaluation, tuning).
pub trait SetVisitor {
    type Output;
    fn visit<P: FromSpec>(self, set: P) -> Self::Output;
}

/// What runs on the training source a spec describes (meta-training).
pub trait SourceVisitor {
    type Output;
    fn visit<S: TrainingSource>(self, source: S) -> Self::Output
    where
        S::Set: FromSpec;
}

impl Spec {
    /// Reads a spec (`-`: standard input). An MLP or conv spec loads its dataset from the
    /// recorded path, and a neural-art spec its feature network, or `data` where given.
    pub fn load(path: &Path, data: Option<&Path>) -> Result<Spec> {
        let mut npz = Npz::open(path)?;
        let kind = if npz.has("kind") {
            let version = npz.scalar("format_version")? as i64;
            if !(1..=SPEC_VERSION).contains(&version) {
                return Err(Error::bad_file(
                    npz.path(),
                    format!("spec format version {version}; this l2l reads versions 1 to {SPEC_VERSION}"),
                ));
            }
            npz.text("kind")?
        } else if npz.has("hidden_sizes") {
            "mlp".to_string()
        } else if npz.has("W") || npz.has("y") || npz.has("theta0") {
            "quadratic".to_string()
        } else {
            return Err(Error::bad_file(
                npz.path(),
                format!(
                    "is not a problem spec: a quadratic spec holds W, y and theta0, an MLP spec hidden_sizes and theta0, but this file holds {}",
                    if npz.names().is_empty() { "no arrays".to_string() } else { npz.names().join(", ") }
                ),
            ));
        };
        match kind.as_str() {
            "quadratic" => Ok(Spec::Quadratic(QuadraticSet::load(&mut npz)?)),
            "mlp" => Ok(Spec::Mlp(MlpSet::load(&mut npz, data)?)),
            "conv" => Ok(Spec::Conv(ConvSet::load(&mut npz, data)?)),
            "neural_art" => Ok(Spec::NeuralArt(NeuralArtSet::load(&mut npz, data)?)),
            other => Err(Error::bad_file(
                npz.path(),
                format!(
                    "spec of unknown kind '{other}'; this l2l reads quadratic, mlp, conv and neural_art specs"
                ),
            )),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Spec::Quadratic(_) => "quadratic",
            Spec::Mlp(_) => "mlp",
            Spec::Conv(_) => "conv",
            Spec::NeuralArt(_) => "neural_art",
        }
    }

    /// Runs `visitor` on the problem set this spec holds.
    pub fn visit<V: SetVisitor>(self, visitor: V) -> V::Output {
        match self {
            Spec::Quadratic(set) => visitor.visit(set),
            Spec::Mlp(set) => visitor.visit(set),
            Spec::Conv(set) => visitor.visit(set),
            Spec::NeuralArt(set) => visitor.visit(set),
        }
    }

    /// Runs `visitor` on the training source this spec describes: fresh problems of its family
    /// every epoch (`seed` picks minibatches of a spec that records no family).
    pub fn visit_source<V: SourceVisitor>(self, seed: u64, visitor: V) -> V::Output {
        match self {
            Spec::Quadratic(set) => visitor.visit(QuadraticSource::from_spec(set, seed)),
            Spec::Mlp(like) => visitor.visit(MlpSource { like }),
            Spec::Conv(like) => visitor.visit(ConvSource { like }),
            Spec::NeuralArt(like) => visitor.visit(NeuralArtSource { like }),
        }
    }
}

/// Takes the problem set of one kind out of a [`Spec`], for code generic over the kind.
pub trait FromSpec: ProblemSet + Sized {
    fn from_spec(spec: Spec) -> Option<Self>;
}

impl FromSpec for QuadraticSet {
    fn from_spec(spec: Spec) -> Option<Self> {
        match spec {
            Spec::Quadratic(s) => Some(s),
            _ => None,
        }
    }
}

impl FromSpec for ConvSet {
    fn from_spec(spec: Spec) -> Option<Self> {
        match spec {
            Spec::Conv(s) => Some(s),
            _ => None,
        }
    }
}

impl FromSpec for NeuralArtSet {
    fn from_spec(spec: Spec) -> Option<Self> {
        match spec {
            Spec::NeuralArt(s) => Some(s),
            _ => None,
        }
    }
}

impl FromSpec for MlpSet {
    fn from_spec(spec: Spec) -> Option<Self> {
        match spec {
            Spec::Mlp(s) => Some(s),
            _ => None,
        }
    }
}

/// Loads a second spec that must be of the same kind and dimension as `like` (a validation
/// spec beside a training or test spec).
pub fn load_companion<P: FromSpec>(path: &Path, data: Option<&Path>, like: &P) -> Result<P> {
    let spec = Spec::load(path, data)?;
    let path = &PathBuf::from(describe(path, false));
    let kind = spec.kind();
    let set = P::from_spec(spec).ok_or_else(|| {
        Error::bad_file(
            path,
            format!("is a {kind} spec, which does not match the other spec's kind"),
        )
    })?;
    if set.dim() != like.dim() {
        return Err(Error::bad_file(
            path,
            format!("its problems have {} parameters, the other spec's {}; they must be the same problem class", set.dim(), like.dim()),
        ));
    }
    Ok(set)
}
