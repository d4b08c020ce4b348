//! The layer sizes and activation of an MLP optimizee.

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
        Ok(())
    }
}
