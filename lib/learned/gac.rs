//! Appendix D's LSTM+GAC: the two-layer coordinatewise LSTM of §2.1 in which the last few
//! cells of each layer are global averaging cells, whose outputs are averaged over every
//! coordinate of a problem at each step (docs/method.md, "Sharing between coordinates").
//!
//! It has the LSTM's weights, layout and initialization; only the tape differs, and only by
//! the averaging ([`crate::learned::lstm::tape::Averaging`]), which carries no weights.

use super::architecture::{Architecture, CoordinateTape, TapeRows};
use super::lstm::tape::Averaging;
use super::lstm::{BlockedTape, LstmShape, NUM_LAYERS};
use crate::io::NpzArrays;

/// The checkpoint's name for this architecture.
pub const ARCHITECTURE: &str = "lstm-gac";

/// The sizes of an LSTM+GAC optimizer: the LSTM's, and the averaging cells of each layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GacShape {
    pub lstm: LstmShape,
    /// Averaging cells per layer (the last `averaging` of its `hidden` units), at least 1.
    pub averaging: usize,
}

impl Architecture for GacShape {
    fn name(&self) -> &'static str {
        ARCHITECTURE
    }
    fn label(&self) -> &'static str {
        ARCHITECTURE
    }
    fn describe(&self) -> String {
        format!(
            "{ARCHITECTURE}(layers={NUM_LAYERS}, hidden={}, averaging_cells={}, inputs={})",
            self.lstm.hidden, self.averaging, self.lstm.inputs
        )
    }
    fn input_features(&self) -> usize {
        self.lstm.inputs
    }
    fn num_params(&self) -> usize {
        self.lstm.num_params()
    }
    fn output_layer(&self) -> std::ops::Range<usize> {
        self.lstm.output_layer()
    }
    /// The LSTM's initialization: an LSTM+GAC and an LSTM of one seed start from the same φ.
    fn init(&self, seed: u64, stream: u64, forget_bias: f32) -> Vec<f32> {
        self.lstm.init(seed, stream, forget_bias)
    }
    fn tape(&self, rows: TapeRows, slots: usize) -> Box<dyn CoordinateTape> {
        if rows.problems == 0 {
            return self.lstm.tape(rows, slots);
        }
        let averaging = Averaging {
            cells: self.averaging,
            rows_per_problem: rows.per_problem(),
        };
        Box::new(BlockedTape::averaging(
            self.lstm, rows.rows, slots, averaging,
        ))
    }
    fn checkpoint_blocks(&self) -> Vec<(&'static str, Vec<usize>)> {
        self.lstm.checkpoint_blocks()
    }
    fn write_metadata(&self, a: &mut NpzArrays, prefix: &str) {
        self.lstm.write_sizes(a, prefix, ARCHITECTURE);
        a.scalar_i64(&format!("{prefix}averaging_cells"), self.averaging as i64);
    }
    /// The LSTM's: the averages add a few FLOPs per averaging cell.
    fn flops_per_coordinate(&self) -> (f64, f64) {
        self.lstm.flops_per_coordinate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::streams::LSTM_INIT;

    fn rows(problems: usize, per: usize, seed: usize) -> Vec<f32> {
        (0..problems * per * 2)
            .map(|r| (((r + seed) * 37) % 11) as f32 * 0.1 - 0.5)
            .collect()
    }

    /// A problem's outputs depend on every coordinate of that problem, and on no other
    /// problem's: the average stays inside one problem, whichever block holds it.
    #[test]
    fn averages_stay_inside_one_problem() {
        let gac = GacShape {
            lstm: LstmShape {
                inputs: 2,
                hidden: 6,
            },
            averaging: 2,
        };
        let w = gac.init(4, LSTM_INIT, 1.0);
        // 300 rows a problem: one problem per block, so blocks and problems coincide.
        for per in [3, 300] {
            let run = |x: &[f32]| {
                let mut tape = gac.tape(TapeRows::new(3, per), 1);
                let mut y = vec![0.0; 3 * per];
                for _ in 0..3 {
                    tape.forward(&w, x, &mut y);
                }
                y
            };
            let x = rows(3, per, 0);
            let base = run(&x);
            // Changing one coordinate of problem 1 changes every output of problem 1 only.
            let mut changed = x.clone();
            changed[2 * (per + 1)] += 1.0;
            let after = run(&changed);
            assert_eq!(base[..per], after[..per]);
            assert_eq!(base[2 * per..], after[2 * per..]);
            assert!((per..2 * per).all(|r| base[r] != after[r]));
        }
    }

    /// One problem alone gives the bits it gives among others, in another block cut.
    #[test]
    fn a_problem_alone_gives_the_bits_it_gives_among_others() {
        let gac = GacShape {
            lstm: LstmShape {
                inputs: 2,
                hidden: 20,
            },
            averaging: 2,
        };
        let w = gac.init(9, LSTM_INIT, 1.0);
        let per = 70;
        let x = rows(9, per, 1);
        let mut all = gac.tape(TapeRows::new(9, per), 1);
        let mut one = gac.tape(TapeRows::new(1, per), 1);
        let (mut y_all, mut y_one) = (vec![0.0; 9 * per], vec![0.0; per]);
        for _ in 0..3 {
            all.forward(&w, &x, &mut y_all);
            one.forward(&w, &x[8 * per * 2..], &mut y_one);
        }
        assert_eq!(y_all[8 * per..], y_one[..]);
    }

    /// An LSTM+GAC checkpoint, with one network or one per group, reads back as itself.
    #[test]
    fn checkpoints_round_trip() {
        use crate::learned::{LearnedOptimizer, Networks, Preprocessing};
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gac.npz");
        let gac = Arc::new(GacShape {
            lstm: LstmShape {
                inputs: 2,
                hidden: 5,
            },
            averaging: 3,
        });
        for groups in [vec!["all".to_string()], vec!["conv".into(), "fc".into()]] {
            let networks = Networks::per_group(&groups, gac.clone());
            let opt = LearnedOptimizer {
                weights: networks.init(1, LSTM_INIT, 1.0),
                networks,
                preprocessing: Preprocessing::LogSign { p: 10.0 },
                output_scale: 0.1,
                base: None,
                epoch: 3,
                validation_loss: 0.25,
                trained_on: None,
            };
            opt.save(&path).unwrap();
            assert_eq!(LearnedOptimizer::load(&path).unwrap(), opt);
        }
    }
}
