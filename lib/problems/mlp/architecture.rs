//! The layer sizes and activation of an MLP optimizee.

use crate::error::{Error, Result};

/// The widest layer of an MLP optimizee (inputs, hidden units or classes).
pub const MAX_WIDTH: usize = 100_000;
/// The most hidden layers.
pub const MAX_LAYERS: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Activation {
    Sigmoid,
    Relu,
}

impl Activation {
    pub fn code(self) -> i64 {
        match self {
            Activation::Sigmoid => 0,
            Activation::Relu => 1,
        }
    }
    pub fn from_code(c: i64) -> Option<Self> {
        match c {
            0 => Some(Activation::Sigmoid),
            1 => Some(Activation::Relu),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Activation::Sigmoid => "sigmoid",
            Activation::Relu => "relu",
        }
    }
}

/// Layer sizes and activation of an MLP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MlpArchitecture {
    pub inputs: usize,
    pub hidden: Vec<usize>,
    pub classes: usize,
    pub activation: Activation,
}

impl MlpArchitecture {
    /// (fan in, fan out) of every layer, the output layer last.
    pub fn layers(&self) -> Vec<(usize, usize)> {
        let mut sizes = vec![self.inputs];
        sizes.extend(&self.hidden);
        sizes.push(self.classes);
        sizes.windows(2).map(|w| (w[0], w[1])).collect()
    }
    pub fn num_params(&self) -> usize {
        self.layers().iter().map(|(i, o)| i * o + o).sum()
    }
    pub fn describe(&self) -> String {
        let hidden: Vec<String> = self.hidden.iter().map(|h| h.to_string()).collect();
        format!(
            "{}-{}-{} {}",
            self.inputs,
            hidden.join("-"),
            self.classes,
            self.activation.name()
        )
    }
    pub fn validate(&self) -> Result<()> {
        if self.hidden.contains(&0) || self.inputs == 0 || self.classes < 2 {
            return Err(Error::Config(format!(
                "invalid MLP {}: layer sizes must be positive",
                self.describe()
            )));
        }
        let sizes = std::iter::once(&self.inputs)
            .chain(&self.hidden)
            .chain(std::iter::once(&self.classes));
        if self.hidden.len() > MAX_LAYERS || sizes.into_iter().any(|&s| s > MAX_WIDTH) {
            return Err(Error::Config(format!(
                "invalid MLP {}: at most {MAX_LAYERS} hidden layers of at most {MAX_WIDTH} units",
                self.describe()
            )));
        }
        Ok(())
    }
}
