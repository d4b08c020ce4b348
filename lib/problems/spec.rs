//! Spec files of every problem kind (docs/formats.md, "Specs"): each records its `kind` and
//! `format_version`; a spec written before those fields existed (or by numpy) is recognised by
//! the names of its arrays. The registry ([`families!`]) is the one place that turns a kind into
//! a concrete problem set, so neither this file nor any binary matches on kinds itself.

use super::conv::{ConvSampling, ConvSet, ConvSource};
use super::external::{ExternalSampling, ExternalSet, ExternalSource};
use super::mlp::{MlpSampling, MlpSet, MlpSource};
use super::neural_art::{NeuralArtSampling, NeuralArtSet, NeuralArtSource};
use super::quadratic::QuadraticSampling;
use super::sampling::{Draw, SampleSpec};
use super::{ProblemSet, QuadraticSet, QuadraticSource, TrainingSource};
use crate::error::{Error, Result};
use crate::io::{describe, Npz};
use std::path::{Path, PathBuf};

pub use super::recorded::SPEC_VERSION;

/// The problem families, one line each: a spec's `kind`, the [`Spec`] variant and problem set
/// that hold it, how its set is read (`npz`, and `data`: the dataset or feature network where
/// the spec's recorded path is not wanted), how a spec's set becomes the training source of
/// meta-training (`seed` picks minibatches of a spec that records no family), and the settings
/// that draw a new set (the family's `sample-optimizee` subcommand, named after its variant).
/// Adding a family is a folder under problems/ and a line here (docs/formats.md, "Adding a
/// problem family").
macro_rules! families {
    ($($kind:literal => $variant:ident($set:ty, $load:expr, $source:expr, $sampling:ty)),+ $(,)?) => {
        /// A spec file of any problem kind.
        pub enum Spec {
            $($variant($set)),+
        }

        /// The settings of a draw of any family: `sample-optimizee`'s subcommands.
        #[derive(clap::Subcommand)]
        pub enum SpecSampler {
            $($variant($sampling)),+
        }

        impl SpecSampler {
            pub fn draw(&self) -> &Draw {
                match self {
                    $(SpecSampler::$variant(s) => s.draw()),+
                }
            }

            /// The files the draw reads, each with the setting that names it.
            pub fn inputs(&self) -> Vec<(&'static str, &Path)> {
                match self {
                    $(SpecSampler::$variant(s) => s.inputs()),+
                }
            }

            /// Checks the settings, reads the inputs and draws the problems, with a line that
            /// says what was drawn.
            pub fn sample(self) -> Result<(Spec, String)> {
                match self {
                    $(SpecSampler::$variant(s) => s.sample().map(|(set, what)| (Spec::$variant(set), what))),+
                }
            }
        }

        /// Every kind a spec may record, in the registry's order.
        pub const KINDS: &[&str] = &[$($kind),+];

        impl Spec {
            /// Reads a spec of `kind`; None for a kind no family has.
            fn load_kind(kind: &str, npz: &mut Npz, data: Option<&Path>) -> Option<Result<Spec>> {
                match kind {
                    $($kind => Some(($load)(npz, data).map(Spec::$variant)),)+
                    _ => None,
                }
            }

            /// Writes the spec (`-`: standard output).
            pub fn save(&self, path: &Path) -> Result<()> {
                match self {
                    $(Spec::$variant(set) => set.save(path)),+
                }
            }

            pub fn kind(&self) -> &'static str {
                match self {
                    $(Spec::$variant(_) => $kind),+
                }
            }

            /// Runs `visitor` on the problem set this spec holds.
            pub fn visit<V: SetVisitor>(self, visitor: V) -> V::Output {
                match self {
                    $(Spec::$variant(set) => visitor.visit(set)),+
                }
            }

            /// Runs `visitor` on the training source this spec describes: fresh problems of
            /// its family every epoch.
            pub fn visit_source<V: SourceVisitor>(self, seed: u64, visitor: V) -> V::Output {
                match self {
                    $(Spec::$variant(set) => visitor.visit(($source)(set, seed))),+
                }
            }
        }

        $(
            impl FromSpec for $set {
                fn from_spec(spec: Spec) -> Option<Self> {
                    match spec {
                        Spec::$variant(s) => Some(s),
                        #[allow(unreachable_patterns)]
                        _ => None,
                    }
                }
            }
        )+
    };
}

families! {
    "quadratic" => Quadratic(QuadraticSet, |npz: &mut Npz, _| QuadraticSet::load(npz), QuadraticSource::from_spec, QuadraticSampling),
    "mlp" => Mlp(MlpSet, MlpSet::load, |like, _| MlpSource { like }, MlpSampling),
    "conv" => Conv(ConvSet, ConvSet::load, |like, _| ConvSource { like }, ConvSampling),
    "neural_art" => NeuralArt(NeuralArtSet, NeuralArtSet::load, |like, _| NeuralArtSource { like }, NeuralArtSampling),
    "external" => External(ExternalSet, ExternalSet::load, |like, _| ExternalSource { like }, ExternalSampling),
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
        Spec::load_kind(&kind, &mut npz, data).unwrap_or_else(|| {
            Err(Error::bad_file(
                npz.path(),
                format!(
                    "spec of unknown kind '{kind}'; this l2l reads {} specs",
                    KINDS.join(", ")
                ),
            ))
        })
    }
}

/// Takes the problem set of one kind out of a [`Spec`], for code generic over the kind.
pub trait FromSpec: ProblemSet + Sized {
    fn from_spec(spec: Spec) -> Option<Self>;
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
