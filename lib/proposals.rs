//! Proposal tables (Appendix B, `evaluate --probe`): what each optimizer would add to chosen
//! coordinates along one trajectory, as parquet with columns `step` int64, `coordinate` int64,
//! `gradient` float64, `update` float64, `optimizer` utf8, `swept` bool (docs/formats.md).

use crate::error::{Error, Result};
use crate::trajectory::{check_column_chunks, read_parquet, typed_column, write_table, Column};
use arrow::array::{Array, ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray};
use arrow::datatypes::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::path::Path;

/// One proposal: at `step`, `optimizer` would add `update` to `coordinate` given `gradient`
/// there; `swept` marks a hypothetical gradient rather than the trajectory's own.
#[derive(Clone, Debug, PartialEq)]
pub struct Proposal {
    pub step: usize,
    pub coordinate: usize,
    pub gradient: f64,
    pub update: f64,
    pub optimizer: String,
    pub swept: bool,
}

pub fn write_proposals(path: &Path, rows: &[Proposal]) -> Result<()> {
    let ints =
        |f: &dyn Fn(&Proposal) -> usize| Column::Int64(rows.iter().map(|r| f(r) as i64).collect());
    let floats =
        |f: &dyn Fn(&Proposal) -> f64| Column::Float64(rows.iter().map(|r| Some(f(r))).collect());
    write_table(
        path,
        vec![
            ("step", ints(&|r| r.step)),
            ("coordinate", ints(&|r| r.coordinate)),
            ("gradient", floats(&|r| r.gradient)),
            ("update", floats(&|r| r.update)),
            (
                "optimizer",
                Column::Utf8(rows.iter().map(|r| r.optimizer.clone()).collect()),
            ),
            (
                "swept",
                Column::Bool(rows.iter().map(|r| r.swept).collect()),
            ),
        ],
    )
}

/// Reads a proposal table (`-`: standard input), checking its columns and types.
pub fn read_proposals(path: &Path) -> Result<Vec<Proposal>> {
    read_parquet(path, decode)
}

fn decode(path: &Path, bytes: bytes::Bytes, size: u64) -> Result<Vec<Proposal>> {
    let err = |d: String| Error::Parquet {
        path: path.into(),
        detail: d,
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| err(format!("not a readable parquet file ({e})")))?;
    check_column_chunks(builder.metadata(), size).map_err(err)?;
    let mut rows = Vec::new();
    for batch in builder.build().map_err(|e| err(e.to_string()))? {
        let batch = batch.map_err(|e| err(e.to_string()))?;
        let col = |name: &str, ty: DataType| -> Result<ArrayRef> {
            typed_column(
                &batch,
                name,
                &ty,
                "a proposal table (evaluate --probe-output) has step, coordinate, gradient, \
                 update, optimizer, swept",
            )
            .map_err(err)
        };
        let (step, coordinate) = (
            col("step", DataType::Int64)?,
            col("coordinate", DataType::Int64)?,
        );
        let (gradient, update) = (
            col("gradient", DataType::Float64)?,
            col("update", DataType::Float64)?,
        );
        let (optimizer, swept) = (
            col("optimizer", DataType::Utf8)?,
            col("swept", DataType::Boolean)?,
        );
        let step = step.as_any().downcast_ref::<Int64Array>().unwrap();
        let coordinate = coordinate.as_any().downcast_ref::<Int64Array>().unwrap();
        let gradient = gradient.as_any().downcast_ref::<Float64Array>().unwrap();
        let update = update.as_any().downcast_ref::<Float64Array>().unwrap();
        let optimizer = optimizer.as_any().downcast_ref::<StringArray>().unwrap();
        let swept = swept.as_any().downcast_ref::<BooleanArray>().unwrap();
        for i in 0..batch.num_rows() {
            let nulls = [
                step.is_null(i),
                coordinate.is_null(i),
                optimizer.is_null(i),
                swept.is_null(i),
            ];
            if nulls.iter().any(|&n| n) || step.value(i) < 0 || coordinate.value(i) < 0 {
                return Err(err(format!(
                    "row {i} has a null or negative step, coordinate, optimizer or swept"
                )));
            }
            let value = |a: &Float64Array| if a.is_null(i) { f64::NAN } else { a.value(i) };
            rows.push(Proposal {
                step: step.value(i) as usize,
                coordinate: coordinate.value(i) as usize,
                gradient: value(gradient),
                update: value(update),
                optimizer: optimizer.value(i).to_string(),
                swept: swept.value(i),
            });
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposals_round_trip_and_a_trajectory_is_not_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.parquet");
        let rows = vec![
            Proposal {
                step: 3,
                coordinate: 7,
                gradient: -0.5,
                update: 0.01,
                optimizer: "lstm".into(),
                swept: false,
            },
            Proposal {
                step: 3,
                coordinate: 7,
                gradient: 1.0,
                update: -0.1,
                optimizer: "adam".into(),
                swept: true,
            },
        ];
        write_proposals(&path, &rows).unwrap();
        assert_eq!(read_proposals(&path).unwrap(), rows);
        let other = dir.path().join("t.parquet");
        write_table(
            &other,
            vec![("optimizer", Column::Utf8(vec!["sgd".into()]))],
        )
        .unwrap();
        let e = read_proposals(&other).unwrap_err().to_string();
        assert!(e.contains("no column 'step'"), "{e}");
    }
}
