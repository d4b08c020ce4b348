//! The conv net of §3.3 and where each of its parameters lies in the flat vector θ.
//!
//! θ holds, layer after layer: for each conv layer, its kernel `[C_out, C_in·K·K]` (index
//! `(c_in·K + di)·K + dj` within a row), its bias `[C_out]`, batch norm's scale γ and offset
//! β `[C_out]`; for each fully connected hidden layer, its weights `[in, out]` row-major, bias,
//! γ and β `[out]`; then the output layer's weights `[in, classes]` and bias.

use crate::error::{Error, Result};
use crate::problems::ParamGroup;
use std::ops::Range;

/// The most channels of a conv layer or units of a fully connected one.
pub const MAX_WIDTH: usize = 4096;
/// The most layers of either kind.
pub const MAX_LAYERS: usize = 16;

/// Which learned network serves which parameter (§3.3: "one proposes parameter updates for the
/// fully connected layers and the other updates the convolutional layer parameters").
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GroupAssignment {
    /// The paper's: every parameter of a conv layer (kernel, bias, γ, β) to the `conv`
    /// network; every parameter of the fully connected and output layers to the `fc` one.
    ByLayer,
    /// The original code's: the conv kernels to the `conv_kernels` network; conv biases,
    /// batch norm's γ and β and every fully connected parameter to the `other` one.
    KernelsOnly,
}

impl GroupAssignment {
    pub fn code(self) -> i64 {
        match self {
            GroupAssignment::ByLayer => 0,
            GroupAssignment::KernelsOnly => 1,
        }
    }
    pub fn from_code(c: i64) -> Option<Self> {
        match c {
            0 => Some(GroupAssignment::ByLayer),
            1 => Some(GroupAssignment::KernelsOnly),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            GroupAssignment::ByLayer => "by-layer",
            GroupAssignment::KernelsOnly => "kernels-only",
        }
    }
    /// The two group names, the conv group first. They differ between the assignments, so a
    /// checkpoint (which records its networks' group names) trained with one assignment is
    /// refused on problems of the other.
    pub fn group_names(self) -> [&'static str; 2] {
        match self {
            GroupAssignment::ByLayer => ["conv", "fc"],
            GroupAssignment::KernelsOnly => ["conv_kernels", "other"],
        }
    }
}

/// What a block of θ is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKind {
    Kernel,
    ConvBias,
    ConvScale,
    ConvOffset,
    FcWeights,
    FcBias,
    FcScale,
    FcOffset,
    OutputWeights,
    OutputBias,
}

/// A conv net: conv layers (each conv, batch norm, ReLU, 2×2 max-pool), fully connected hidden
/// layers (each with batch norm and ReLU), and a softmax output layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvArchitecture {
    /// Input channels, height and width (3, 32, 32 for CIFAR-10).
    pub input: (usize, usize, usize),
    /// Output channels of each conv layer (§3.3: 16, 16, 16).
    pub conv_channels: Vec<usize>,
    /// The side of every square kernel, odd (§3.3: 5).
    pub kernel: usize,
    /// Units of each fully connected hidden layer (§3.3: 32).
    pub fc_units: Vec<usize>,
    pub classes: usize,
}

impl ConvArchitecture {
    /// The network of §3.3 for `classes` classes of 3×32×32 images.
    pub fn paper(classes: usize) -> Self {
        ConvArchitecture {
            input: (3, 32, 32),
            conv_channels: vec![16, 16, 16],
            kernel: 5,
            fc_units: vec![32],
            classes,
        }
    }

    /// (C_in, H, W) at the input of each conv layer.
    pub fn conv_inputs(&self) -> Vec<(usize, usize, usize)> {
        let (mut c, mut h, mut w) = self.input;
        self.conv_channels
            .iter()
            .map(|&out| {
                let at = (c, h, w);
                (c, h, w) = (out, h / 2, w / 2);
                at
            })
            .collect()
    }

    /// Values per image entering the first fully connected layer.
    pub fn features(&self) -> usize {
        let (c, h, w) = self.input;
        let halvings = self.conv_channels.len() as u32;
        let c = self.conv_channels.last().copied().unwrap_or(c);
        c * (h >> halvings) * (w >> halvings)
    }

    /// (fan in, fan out) of each fully connected layer, the output layer last.
    pub fn fc_layers(&self) -> Vec<(usize, usize)> {
        let mut sizes = vec![self.features()];
        sizes.extend(&self.fc_units);
        sizes.push(self.classes);
        sizes.windows(2).map(|w| (w[0], w[1])).collect()
    }

    /// Every block of θ in order: its kind, its layer (conv layers, then fully connected
    /// layers counted from 0, the output layer last) and its range.
    pub fn blocks(&self) -> Vec<(BlockKind, usize, Range<usize>)> {
        let mut blocks = Vec::new();
        let mut at = 0;
        let mut push = |kind, layer, len: usize| {
            blocks.push((kind, layer, at..at + len));
            at += len;
        };
        for (l, (&out, (c_in, _, _))) in self
            .conv_channels
            .iter()
            .zip(self.conv_inputs())
            .enumerate()
        {
            push(BlockKind::Kernel, l, out * c_in * self.kernel * self.kernel);
            push(BlockKind::ConvBias, l, out);
            push(BlockKind::ConvScale, l, out);
            push(BlockKind::ConvOffset, l, out);
        }
        let fc = self.fc_layers();
        let last = fc.len() - 1;
        for (l, &(i, o)) in fc.iter().enumerate() {
            if l < last {
                push(BlockKind::FcWeights, l, i * o);
                push(BlockKind::FcBias, l, o);
                push(BlockKind::FcScale, l, o);
                push(BlockKind::FcOffset, l, o);
            } else {
                push(BlockKind::OutputWeights, l, i * o);
                push(BlockKind::OutputBias, l, o);
            }
        }
        blocks
    }

    /// Floating-point operations of the GEMMs of one forward and backward pass over `batch`
    /// images: per layer the product itself, the weights' gradient and (below the top) the
    /// input's gradient, each 2·m·n·k. The benchmark divides by time to give a rate.
    pub fn gemm_flops(&self, batch: usize) -> f64 {
        let k2 = self.kernel * self.kernel;
        let conv: f64 = self
            .conv_channels
            .iter()
            .zip(self.conv_inputs())
            .enumerate()
            .map(|(l, (&out, (c, h, w)))| {
                let one = 2.0 * (out * c * k2) as f64 * (batch * h * w) as f64;
                one * if l == 0 { 2.0 } else { 3.0 }
            })
            .sum();
        let fc: f64 = self
            .fc_layers()
            .iter()
            .map(|&(i, o)| 3.0 * 2.0 * (i * o * batch) as f64)
            .sum();
        conv + fc
    }

    pub fn num_params(&self) -> usize {
        self.blocks().last().map_or(0, |(_, _, r)| r.end)
    }

    /// The two parameter groups under `assignment`, the conv group first.
    pub fn groups(&self, assignment: GroupAssignment) -> Vec<ParamGroup> {
        let [conv, other] = assignment.group_names();
        let in_conv = |kind: BlockKind| match assignment {
            GroupAssignment::ByLayer => matches!(
                kind,
                BlockKind::Kernel
                    | BlockKind::ConvBias
                    | BlockKind::ConvScale
                    | BlockKind::ConvOffset
            ),
            GroupAssignment::KernelsOnly => kind == BlockKind::Kernel,
        };
        let mut groups = [conv, other].map(|name| ParamGroup {
            name: name.into(),
            ranges: Vec::new(),
        });
        for (kind, _, range) in self.blocks() {
            let g = &mut groups[usize::from(!in_conv(kind))];
            // Adjacent blocks of one group make one range.
            match g.ranges.last_mut() {
                Some(last) if last.end == range.start => last.end = range.end,
                _ => g.ranges.push(range),
            }
        }
        groups.into()
    }

    pub fn describe(&self) -> String {
        let (c, h, w) = self.input;
        let convs: Vec<String> = self.conv_channels.iter().map(|c| c.to_string()).collect();
        let fcs: Vec<String> = self.fc_units.iter().map(|u| u.to_string()).collect();
        format!(
            "{c}x{h}x{w} conv{k}x{k}[{}] fc[{}] {} classes",
            convs.join(","),
            fcs.join(","),
            self.classes,
            k = self.kernel
        )
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |why: &str| {
            Err(Error::Config(format!(
                "invalid conv net {}: {why}",
                self.describe()
            )))
        };
        let (c, h, w) = self.input;
        let widths = self.conv_channels.iter().chain(&self.fc_units);
        if c == 0 || widths.clone().any(|&u| u == 0 || u > MAX_WIDTH) || c > MAX_WIDTH {
            return bad(&format!(
                "channels and units must be between 1 and {MAX_WIDTH}"
            ));
        }
        if self.conv_channels.is_empty()
            || self.conv_channels.len() > MAX_LAYERS
            || self.fc_units.len() > MAX_LAYERS
        {
            return bad(&format!(
                "it needs 1 to {MAX_LAYERS} conv layers and at most {MAX_LAYERS} fully connected ones"
            ));
        }
        if self.kernel % 2 == 0 || self.kernel > 15 {
            return bad("the kernel side must be odd and at most 15 (SAME padding)");
        }
        let step = 1usize << self.conv_channels.len();
        if h == 0 || w == 0 || h % step != 0 || w % step != 0 || h > 1024 || w > 1024 {
            return bad(&format!(
                "height and width must be multiples of {step} (one 2×2 pooling per conv layer), at most 1024"
            ));
        }
        if !(2..=MAX_WIDTH).contains(&self.classes) {
            return bad("it needs 2 or more classes");
        }
        Ok(())
    }
}
