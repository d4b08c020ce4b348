//! Trajectory files: learning curves in long format, one row per (optimizer, problem, step),
//! as parquet (written and read through `io::table`).
//!
//! Columns: `optimizer` utf8, `problem` int64, `step` int64 (0 is the loss at θ0),
//! `loss` float64, `lr` float64 (null for learned optimizers). Format version 2 adds
//! `test_loss` float64, the loss on held-out data (null at steps where it was not measured),
//! and records `format_version` in the file's key-value metadata; a file without held-out
//! losses is written as version 1, unchanged.

use crate::error::{Error, Result};
use crate::io::table::{
    checked_reader, read_parquet, typed_column, write_table, write_table_with_metadata, Column,
};
use arrow::array::{Array, ArrayRef, Float64Array, Int64Array, StringArray};
use arrow::datatypes::DataType;
use ndarray::Array2;
use std::path::Path;

/// Losses of one optimizer on every problem: `losses[[problem, step]]`, step 0 at θ0.
#[derive(Clone, Debug)]
pub struct Curves {
    pub label: String,
    pub lr: Option<f64>,
    pub losses: Array2<f64>,
    /// Losses on held-out data, same shape; NaN at steps where none was measured.
    pub test_losses: Option<Array2<f64>>,
}

/// The newest trajectory format version this l2l writes and reads.
pub const TRAJECTORY_FORMAT_VERSION: i64 = 2;
/// The key of the format version in a trajectory file's key-value metadata.
const VERSION_KEY: &str = "format_version";

impl Curves {
    /// Mean loss over problems at `step`; a diverged problem (NaN or Inf) makes it infinite.
    pub fn mean_at(&self, step: usize) -> f64 {
        let col = self.losses.column(step);
        if col.iter().any(|x| !x.is_finite()) {
            return f64::INFINITY;
        }
        col.mean().unwrap_or(f64::INFINITY)
    }
    pub fn final_mean(&self) -> f64 {
        self.mean_at(self.losses.ncols() - 1)
    }
    /// One progress line: the label, the rate, the mean loss at the last step, and the
    /// held-out loss there where the run recorded one.
    pub fn progress_line(&self) -> String {
        let steps = self.losses.ncols() - 1;
        let held_out = self
            .test_losses
            .as_ref()
            .and_then(|t| t.column(steps).mean())
            .map(|m| format!(", held-out {m:.4}"))
            .unwrap_or_default();
        let lr = self.lr.map_or_else(|| "-".into(), |l| format!("{l:.4}"));
        format!(
            "{:<8} lr {lr:<10} mean loss at step {steps}: {:.4}{held_out}",
            self.label,
            self.final_mean()
        )
    }
    /// Mean loss over problems and the last `window` steps (1: [`Curves::final_mean`]); a
    /// diverged problem makes it infinite. Averaging over steps quiets a minibatch loss, whose
    /// value at a single step is noisy (CIFAR-10's 128 images: about ±0.1).
    pub fn window_mean(&self, window: usize) -> f64 {
        let last = self.losses.ncols();
        let window = window.clamp(1, last);
        let sum: f64 = (last - window..last).map(|s| self.mean_at(s)).sum();
        sum / window as f64
    }
    /// The curves a run of `steps` steps would have recorded, cut from this longer run: a run
    /// does not depend on its horizon (no problem or update rule reads it), so its first
    /// `steps` steps are the same bits. None where the shorter run would have recorded more:
    /// its held-out loss at its last step, which this run, recording one every
    /// `held_out_every` steps, did not take there.
    pub fn prefix(&self, steps: usize, held_out_every: usize) -> Option<Curves> {
        let width = steps + 1;
        let last_recorded = held_out_every > 0 && steps % held_out_every == 0;
        if width > self.losses.ncols()
            || (self.test_losses.is_some() && width < self.losses.ncols() && !last_recorded)
        {
            return None;
        }
        let cut = |a: &Array2<f64>| a.slice(ndarray::s![.., ..width]).to_owned();
        Some(Curves {
            label: self.label.clone(),
            lr: self.lr,
            losses: cut(&self.losses),
            test_losses: self.test_losses.as_ref().map(cut),
        })
    }
}

/// The most optimizer steps a run may take (`--steps`, and the largest step a trajectory
/// file may hold): a bound on what a run allocates, far above any experiment's length.
pub const MAX_STEPS: usize = 1_000_000;

/// Writes learning curves in the long trajectory format.
pub fn write_trajectories(path: &Path, curves: &[Curves]) -> Result<()> {
    let rows: usize = curves.iter().map(|c| c.losses.len()).sum();
    let mut optimizer = Vec::with_capacity(rows);
    let mut problem = Vec::with_capacity(rows);
    let mut step = Vec::with_capacity(rows);
    let mut loss = Vec::with_capacity(rows);
    let mut lr = Vec::with_capacity(rows);
    let mut test_loss = Vec::with_capacity(rows);
    for c in curves {
        for ((p, s), &l) in c.losses.indexed_iter() {
            optimizer.push(c.label.clone());
            problem.push(p as i64);
            step.push(s as i64);
            loss.push(Some(l));
            lr.push(c.lr);
            // NaN marks "not measured"; a measured loss that diverged is written as Inf.
            test_loss.push(c.test_losses.as_ref().and_then(|t| {
                let v = t[[p, s]];
                (!v.is_nan()).then_some(v)
            }));
        }
    }
    let mut columns = vec![
        ("optimizer", Column::Utf8(optimizer)),
        ("problem", Column::Int64(problem)),
        ("step", Column::Int64(step)),
        ("loss", Column::Float64(loss)),
        ("lr", Column::Float64(lr)),
    ];
    // The oldest version that holds the file: version 1 has no held-out losses.
    if curves.iter().all(|c| c.test_losses.is_none()) {
        return write_table(path, columns);
    }
    columns.push(("test_loss", Column::Float64(test_loss)));
    let version = parquet::file::metadata::KeyValue::new(
        VERSION_KEY.to_string(),
        TRAJECTORY_FORMAT_VERSION.to_string(),
    );
    write_table_with_metadata(path, columns, Some(vec![version]))
}

/// One row of a trajectory file.
#[derive(Clone, Debug, PartialEq)]
pub struct TrajectoryRow {
    pub optimizer: String,
    pub problem: i64,
    pub step: i64,
    pub loss: f64,
    pub lr: Option<f64>,
    /// The held-out loss (format version 2), where it was measured.
    pub test_loss: Option<f64>,
}

/// A row without a held-out loss, for the tests of the modules that read trajectories.
#[cfg(test)]
pub(crate) fn row(
    optimizer: &str,
    problem: i64,
    step: i64,
    loss: f64,
    lr: Option<f64>,
) -> TrajectoryRow {
    TrajectoryRow {
        optimizer: optimizer.into(),
        problem,
        step,
        loss,
        lr,
        test_loss: None,
    }
}

/// Reads a trajectory file (`-`: standard input), checking that the five columns exist with
/// their types. A file so corrupt that the parquet decoder fails inside is an error like any
/// other.
pub fn read_trajectories(path: &Path) -> Result<Vec<TrajectoryRow>> {
    read_parquet(path, decode_trajectories)
}

fn decode_trajectories(path: &Path, bytes: bytes::Bytes, size: u64) -> Result<Vec<TrajectoryRow>> {
    let err = |d: String| Error::Parquet {
        path: path.into(),
        detail: d,
    };
    let builder = checked_reader(path, bytes, size)?;
    check_version(builder.metadata()).map_err(err)?;
    let reader = builder.build().map_err(|e| err(e.to_string()))?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| err(e.to_string()))?;
        let col = |name: &str, ty: DataType| -> Result<ArrayRef> {
            typed_column(
                &batch,
                name,
                &ty,
                "a trajectory has optimizer, problem, step, loss, lr",
            )
            .map_err(err)
        };
        let optimizer = col("optimizer", DataType::Utf8)?;
        let problem = col("problem", DataType::Int64)?;
        let step = col("step", DataType::Int64)?;
        let loss = col("loss", DataType::Float64)?;
        let lr = col("lr", DataType::Float64)?;
        let test_loss = match batch.column_by_name("test_loss") {
            Some(_) => Some(col("test_loss", DataType::Float64)?),
            None => None,
        };
        let test_loss = test_loss
            .as_ref()
            .map(|c| c.as_any().downcast_ref::<Float64Array>().unwrap());
        let optimizer = optimizer.as_any().downcast_ref::<StringArray>().unwrap();
        let problem = problem.as_any().downcast_ref::<Int64Array>().unwrap();
        let step = step.as_any().downcast_ref::<Int64Array>().unwrap();
        let loss = loss.as_any().downcast_ref::<Float64Array>().unwrap();
        let lr = lr.as_any().downcast_ref::<Float64Array>().unwrap();
        for i in 0..batch.num_rows() {
            if optimizer.is_null(i) || problem.is_null(i) || step.is_null(i) {
                return Err(err(format!(
                    "row {i} has a null optimizer, problem or step"
                )));
            }
            rows.push(TrajectoryRow {
                optimizer: optimizer.value(i).to_string(),
                problem: problem.value(i),
                step: step.value(i),
                loss: if loss.is_null(i) {
                    f64::NAN
                } else {
                    loss.value(i)
                },
                lr: (!lr.is_null(i)).then(|| lr.value(i)),
                test_loss: test_loss.and_then(|t| (!t.is_null(i)).then(|| t.value(i))),
            });
        }
    }
    Ok(rows)
}

/// Refuses a trajectory of a newer format version than this l2l reads (a file without one is
/// version 1).
fn check_version(
    metadata: &parquet::file::metadata::ParquetMetaData,
) -> std::result::Result<(), String> {
    let declared = metadata
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|k| k.key == VERSION_KEY))
        .and_then(|k| k.value.clone());
    match declared {
        None => Ok(()),
        Some(v) => match v.trim().parse::<i64>() {
            Ok(n) if (1..=TRAJECTORY_FORMAT_VERSION).contains(&n) => Ok(()),
            _ => Err(format!(
                "trajectory format version {v:?}; this l2l reads versions 1 to \
                 {TRAJECTORY_FORMAT_VERSION}: use a newer l2l"
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_mean_averages_the_last_steps_and_a_divergence_is_infinite() {
        let mut c = Curves {
            label: "sgd".into(),
            lr: Some(0.1),
            losses: ndarray::array![[4.0, 3.0, 2.0, 1.0], [6.0, 5.0, 4.0, 3.0]],
            test_losses: None,
        };
        assert_eq!(c.window_mean(1), c.final_mean());
        assert_eq!(c.window_mean(2), (3.0 + 2.0) / 2.0);
        assert_eq!(c.window_mean(9), (5.0 + 4.0 + 3.0 + 2.0) / 4.0);
        c.losses[[1, 2]] = f64::NAN;
        assert_eq!(c.window_mean(2), f64::INFINITY);
        assert_eq!(c.window_mean(1), 2.0);
    }

    #[test]
    fn trajectories_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let curves = vec![
            Curves {
                label: "adam".into(),
                lr: Some(0.1),
                losses: ndarray::array![[3.0, 2.0], [5.0, f64::NAN]],
                test_losses: None,
            },
            Curves {
                label: "lstm".into(),
                lr: None,
                losses: ndarray::array![[3.0, 1.0], [5.0, 4.0]],
                test_losses: None,
            },
        ];
        write_trajectories(&path, &curves).unwrap();
        let rows = read_trajectories(&path).unwrap();
        assert_eq!(rows.len(), 8);
        assert_eq!(
            rows[1],
            TrajectoryRow {
                optimizer: "adam".into(),
                problem: 0,
                step: 1,
                loss: 2.0,
                lr: Some(0.1),
                test_loss: None,
            }
        );
        assert!(rows[3].loss.is_nan());
        assert_eq!(rows[7].lr, None);
    }

    #[test]
    fn held_out_losses_make_a_version_2_file_and_a_newer_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let nan = f64::NAN;
        let curves = vec![
            Curves {
                label: "adam".into(),
                lr: Some(0.1),
                losses: ndarray::array![[3.0, 2.0, 1.0]],
                test_losses: Some(ndarray::array![[4.0, nan, f64::INFINITY]]),
            },
            Curves {
                label: "lstm".into(),
                lr: None,
                losses: ndarray::array![[3.0, 1.0, 0.5]],
                test_losses: None,
            },
        ];
        write_trajectories(&path, &curves).unwrap();
        let rows = read_trajectories(&path).unwrap();
        let tests: Vec<_> = rows.iter().map(|r| r.test_loss).collect();
        assert_eq!(
            tests,
            vec![Some(4.0), None, Some(f64::INFINITY), None, None, None]
        );
        let bytes = std::fs::read(&path).unwrap();
        let meta =
            parquet::file::serialized_reader::SerializedFileReader::new(bytes::Bytes::from(bytes))
                .unwrap();
        use parquet::file::reader::FileReader;
        let kv = meta
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .unwrap();
        assert!(kv
            .iter()
            .any(|k| k.key == VERSION_KEY && k.value.as_deref() == Some("2")));

        // A version-1 file carries no version and no test_loss column.
        let v1 = dir.path().join("v1.parquet");
        let mut old = curves.clone();
        old[0].test_losses = None;
        write_trajectories(&v1, &old).unwrap();
        assert!(read_trajectories(&v1)
            .unwrap()
            .iter()
            .all(|r| r.test_loss.is_none()));

        let newer = dir.path().join("v3.parquet");
        let kv = parquet::file::metadata::KeyValue::new(VERSION_KEY.into(), "3".to_string());
        write_table_with_metadata(
            &newer,
            vec![("step", Column::Int64(vec![0]))],
            Some(vec![kv]),
        )
        .unwrap();
        let e = read_trajectories(&newer).unwrap_err().to_string();
        assert!(
            e.contains("version \"3\"") && e.contains("newer l2l"),
            "{e}"
        );
    }
}
