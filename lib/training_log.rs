//! Meta-training logs: what every epoch of a `meta-train` run measured, written as
//! `<checkpoint stem>.log.parquet` beside the checkpoint (docs/formats.md). Columns: `epoch`
//! int64 (0 is the starting point, validated before any training), `training_mean_loss` and
//! `training_final_loss` float64 (the epoch's mean meta-loss term f(θ_t) and its loss at the
//! last step; null at epoch 0), `validation_loss` float64 (null where the epoch did not
//! validate), `seconds` float64 (wall time since the run began, across resumes) and `kept`
//! bool (the validation that chose the checkpoint). `format_version` = 1 and
//! `content` = `meta-training log` sit in the key-value metadata.

use crate::error::{Error, Result};
use crate::io::companion;
use crate::io::table::{read_table, write_table_with_metadata, Column};
use arrow::datatypes::DataType;
use std::path::{Path, PathBuf};

/// The newest meta-training log format this l2l writes and reads.
pub const LOG_FORMAT_VERSION: i64 = 1;

/// One epoch of a meta-training run.
#[derive(Clone, Debug, PartialEq)]
pub struct LogRow {
    pub epoch: u64,
    /// NaN at epoch 0 and for an epoch whose unrolls were all skipped.
    pub training_mean_loss: f64,
    pub training_final_loss: f64,
    pub validation_loss: Option<f64>,
    pub seconds: f64,
}

/// The log of a meta-training run, kept in the resume state so that a resumed run's log is
/// whole.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrainingLog {
    pub rows: Vec<LogRow>,
}

/// Where a checkpoint's log goes: `<stem>.log.parquet` beside it; none for a checkpoint
/// written to standard output, a pipe or a device.
pub fn log_path(checkpoint: &Path) -> Option<PathBuf> {
    companion(checkpoint, ".log.parquet")
}

impl TrainingLog {
    /// Wall time already spent before this session (the last row's), so that `seconds`
    /// counts across resumes.
    pub fn seconds_so_far(&self) -> f64 {
        self.rows.last().map_or(0.0, |r| r.seconds)
    }

    /// The log as parallel arrays, for the resume state: (epochs, then per row training
    /// mean, training final, validation (NaN: none), seconds).
    pub fn to_arrays(&self) -> (Vec<i64>, Vec<[f64; 4]>) {
        let epochs = self.rows.iter().map(|r| r.epoch as i64).collect();
        let values = self
            .rows
            .iter()
            .map(|r| {
                [
                    r.training_mean_loss,
                    r.training_final_loss,
                    r.validation_loss.unwrap_or(f64::NAN),
                    r.seconds,
                ]
            })
            .collect();
        (epochs, values)
    }

    /// The inverse of [`TrainingLog::to_arrays`].
    pub fn from_arrays(epochs: &[i64], values: &[[f64; 4]]) -> Self {
        let rows = epochs
            .iter()
            .zip(values)
            .map(|(&e, v)| LogRow {
                epoch: e.max(0) as u64,
                training_mean_loss: v[0],
                training_final_loss: v[1],
                validation_loss: (!v[2].is_nan()).then_some(v[2]),
                seconds: v[3],
            })
            .collect();
        TrainingLog { rows }
    }

    /// Writes the log, marking the validation of `kept_epoch` (the checkpoint's) as kept.
    pub fn write(&self, path: &Path, kept_epoch: Option<u64>) -> Result<()> {
        let f =
            |g: &dyn Fn(&LogRow) -> Option<f64>| Column::Float64(self.rows.iter().map(g).collect());
        let nan_is_null = |v: f64| (!v.is_nan()).then_some(v);
        let metadata = vec![
            parquet::file::metadata::KeyValue::new(
                "format_version".to_string(),
                LOG_FORMAT_VERSION.to_string(),
            ),
            parquet::file::metadata::KeyValue::new(
                "content".to_string(),
                "meta-training log".to_string(),
            ),
        ];
        write_table_with_metadata(
            path,
            vec![
                (
                    "epoch",
                    Column::Int64(self.rows.iter().map(|r| r.epoch as i64).collect()),
                ),
                (
                    "training_mean_loss",
                    f(&|r| nan_is_null(r.training_mean_loss)),
                ),
                (
                    "training_final_loss",
                    f(&|r| nan_is_null(r.training_final_loss)),
                ),
                ("validation_loss", f(&|r| r.validation_loss)),
                ("seconds", f(&|r| Some(r.seconds))),
                (
                    "kept",
                    Column::Bool(
                        self.rows
                            .iter()
                            .map(|r| r.validation_loss.is_some() && Some(r.epoch) == kept_epoch)
                            .collect(),
                    ),
                ),
            ],
            Some(metadata),
        )
    }

    /// Reads a log written by [`TrainingLog::write`], with the epoch the checkpoint kept.
    pub fn read(path: &Path) -> Result<(Self, Option<u64>)> {
        let t = read_table(
            path,
            &[
                ("epoch", DataType::Int64),
                ("training_mean_loss", DataType::Float64),
                ("training_final_loss", DataType::Float64),
                ("validation_loss", DataType::Float64),
                ("seconds", DataType::Float64),
                ("kept", DataType::Boolean),
            ],
            "a meta-training log has epoch, training_mean_loss, training_final_loss, \
             validation_loss, seconds, kept",
        )?;
        let epochs = t.ints("epoch");
        if epochs.iter().any(|e| !matches!(e, Some(n) if *n >= 0)) {
            return Err(Error::Parquet {
                path: path.into(),
                detail: "a null or negative epoch".into(),
            });
        }
        let nan = |v: Option<f64>| v.unwrap_or(f64::NAN);
        let (mean, last, val, secs) = (
            t.floats("training_mean_loss"),
            t.floats("training_final_loss"),
            t.floats("validation_loss"),
            t.floats("seconds"),
        );
        let kept = t.bools("kept");
        let rows = (0..t.rows())
            .map(|i| LogRow {
                epoch: epochs[i].unwrap_or(0) as u64,
                training_mean_loss: nan(mean[i]),
                training_final_loss: nan(last[i]),
                validation_loss: val[i],
                seconds: nan(secs[i]),
            })
            .collect::<Vec<_>>();
        let kept_epoch = (0..t.rows()).find(|&i| kept[i]).map(|i| rows[i].epoch);
        Ok((TrainingLog { rows }, kept_epoch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_round_trips_through_parquet_and_the_resume_arrays() {
        let log = TrainingLog {
            rows: vec![
                LogRow {
                    epoch: 0,
                    training_mean_loss: f64::NAN,
                    training_final_loss: f64::NAN,
                    validation_loss: Some(0.5),
                    seconds: 0.1,
                },
                LogRow {
                    epoch: 1,
                    training_mean_loss: 0.9,
                    training_final_loss: 0.4,
                    validation_loss: None,
                    seconds: 1.5,
                },
                LogRow {
                    epoch: 2,
                    training_mean_loss: 0.8,
                    training_final_loss: 0.3,
                    validation_loss: Some(0.25),
                    seconds: 2.5,
                },
            ],
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log.parquet");
        log.write(&path, Some(2)).unwrap();
        let (back, kept) = TrainingLog::read(&path).unwrap();
        assert_eq!(kept, Some(2));
        assert_eq!(back.rows.len(), 3);
        assert!(back.rows[0].training_mean_loss.is_nan());
        assert_eq!(back.rows[1..], log.rows[1..]);
        let (e, v) = log.to_arrays();
        let again = TrainingLog::from_arrays(&e, &v);
        assert_eq!(again.rows[2], log.rows[2]);
        assert_eq!(again.rows[1].validation_loss, None);
        assert_eq!(
            log_path(Path::new("out/a/NAG+LSTM.npz")),
            Some(PathBuf::from("out/a/NAG+LSTM.log.parquet"))
        );
    }
}
