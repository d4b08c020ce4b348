//! Proposal tables (Appendix B, `evaluate --probe`): what each optimizer would add to chosen
//! coordinates along one trajectory, as parquet with columns `step` int64, `coordinate` int64,
//! `gradient` float64, `update` float64, `optimizer` utf8, `swept` bool (docs/formats.md).

use crate::error::{Error, Result};
use crate::io::{read_table, write_table, Column};
use arrow::datatypes::DataType;
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
    let t = read_table(
        path,
        &[
            ("step", DataType::Int64),
            ("coordinate", DataType::Int64),
            ("gradient", DataType::Float64),
            ("update", DataType::Float64),
            ("optimizer", DataType::Utf8),
            ("swept", DataType::Boolean),
        ],
        "a proposal table (evaluate --probe-output) has step, coordinate, gradient, update, \
         optimizer, swept",
    )?;
    let (step, coordinate) = (t.ints("step"), t.ints("coordinate"));
    let (gradient, update) = (t.floats("gradient"), t.floats("update"));
    let (optimizer, swept) = (t.text("optimizer"), t.bools("swept"));
    let mut rows = Vec::with_capacity(t.rows());
    for i in 0..t.rows() {
        let (Some(s), Some(c)) = (step[i], coordinate[i]) else {
            return Err(bad_row(path, i));
        };
        if s < 0 || c < 0 || optimizer[i].is_empty() {
            return Err(bad_row(path, i));
        }
        rows.push(Proposal {
            step: s as usize,
            coordinate: c as usize,
            gradient: gradient[i].unwrap_or(f64::NAN),
            update: update[i].unwrap_or(f64::NAN),
            optimizer: optimizer[i].clone(),
            swept: swept[i],
        });
    }
    Ok(rows)
}

fn bad_row(path: &Path, i: usize) -> Error {
    Error::Parquet {
        path: path.into(),
        detail: format!("row {i} has a null or negative step or coordinate, or no optimizer"),
    }
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
