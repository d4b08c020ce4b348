//! A learned optimizer: its networks, one per parameter group, their weights φ in one flat
//! vector, and the processing around them.

use super::architecture::Architecture;
use super::preprocessing::Preprocessing;
use crate::baselines::BaseStep;
use crate::datasets::DataSplit;
use std::ops::Range;
use std::sync::Arc;

/// The name of the network of a learned optimizer with one network, which serves every
/// parameter of every problem (the paper's §3.1 and §3.2 setting): the problems' one group.
pub use crate::problems::ALL_PARAMETERS;

/// One network of a learned optimizer and the parameter group it serves.
#[derive(Clone, Debug)]
pub struct Network {
    /// The group name a problem gives its parameters (e.g. `conv`, `fc`), or
    /// [`ALL_PARAMETERS`].
    pub group: String,
    pub architecture: Arc<dyn Architecture>,
}

impl PartialEq for Network {
    fn eq(&self, other: &Self) -> bool {
        self.group == other.group && self.architecture.describe() == other.architecture.describe()
    }
}

/// The networks of a learned optimizer, whose weights lie one after another in φ.
#[derive(Clone, Debug, PartialEq)]
pub struct Networks(pub Vec<Network>);

impl Networks {
    /// One network for every parameter.
    pub fn single(architecture: Arc<dyn Architecture>) -> Self {
        Networks(vec![Network {
            group: ALL_PARAMETERS.into(),
            architecture,
        }])
    }

    /// The same architecture for each named group, in the given order.
    pub fn per_group(groups: &[String], architecture: Arc<dyn Architecture>) -> Self {
        if groups.len() == 1 && groups[0] == ALL_PARAMETERS {
            return Self::single(architecture);
        }
        Networks(
            groups
                .iter()
                .map(|g| Network {
                    group: g.clone(),
                    architecture: architecture.clone(),
                })
                .collect(),
        )
    }

    pub fn iter(&self) -> impl Iterator<Item = &Network> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True for the paper's setting: one network for every parameter.
    pub fn is_single(&self) -> bool {
        self.0.len() == 1 && self.0[0].group == ALL_PARAMETERS
    }

    /// The group names, in φ's order.
    pub fn groups(&self) -> Vec<String> {
        self.0.iter().map(|n| n.group.clone()).collect()
    }

    /// Where each network's weights lie in φ.
    pub fn ranges(&self) -> Vec<Range<usize>> {
        let mut start = 0;
        self.0
            .iter()
            .map(|n| {
                let r = start..start + n.architecture.num_params();
                start = r.end;
                r
            })
            .collect()
    }

    pub fn num_params(&self) -> usize {
        self.0.iter().map(|n| n.architecture.num_params()).sum()
    }

    /// Every network's output layer, as ranges of φ.
    pub fn output_layers(&self) -> Vec<Range<usize>> {
        self.ranges()
            .into_iter()
            .zip(&self.0)
            .map(|(r, n)| {
                let o = n.architecture.output_layer();
                r.start + o.start..r.start + o.end
            })
            .collect()
    }

    /// Fresh weights: network k from stream `stream + k` of `seed`, so that the first network
    /// is drawn as a single network is.
    pub fn init(&self, seed: u64, stream: u64, forget_bias: f32) -> Vec<f32> {
        self.0
            .iter()
            .enumerate()
            .flat_map(|(k, n)| n.architecture.init(seed, stream + k as u64, forget_bias))
            .collect()
    }

    /// The network serving group `group`: the one of that name, or the single network.
    pub fn serving(&self, group: &str) -> Option<usize> {
        if self.is_single() {
            return Some(0);
        }
        self.0.iter().position(|n| n.group == group)
    }

    pub fn describe(&self) -> String {
        self.0
            .iter()
            .map(|n| format!("{}: {}", n.group, n.architecture.describe()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A trained optimizer: its networks and weights φ, with the input and output processing it
/// was trained with.
#[derive(Clone, Debug, PartialEq)]
pub struct LearnedOptimizer {
    pub networks: Networks,
    /// φ: every network's weights, in network order.
    pub weights: Vec<f32>,
    pub preprocessing: Preprocessing,
    /// The network's output is multiplied by this before it is added to θ (§3.2 uses 0.1).
    pub output_scale: f32,
    /// A hand-designed rule whose step is added to the network's (None in the paper).
    pub base: Option<BaseStep>,
    /// Meta-training epochs behind these weights.
    pub epoch: u64,
    /// Mean final validation loss when these weights were kept (NaN if never validated).
    pub validation_loss: f64,
    /// The images of the problems it was meta-trained on (None for problems without a
    /// dataset, and in checkpoints written before it was recorded).
    pub trained_on: Option<DataSplit>,
}
