//! Small parquet tables read and written whole: the trajectories' long format
//! (`trajectory.rs`), tuning grids, training logs, proposals and benchmarks. Reading checks
//! the footer before any page and turns a panic inside the decoder into an error; writing is
//! atomic. Columns are cast from what pandas, polars or DuckDB may have re-saved.

use super::{contain, describe, read_input, write_atomically, MAX_STDIN_BYTES};
use crate::error::{Error, Result};
use arrow::array::{Array, ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A column of a table to be written.
pub enum Column {
    Utf8(Vec<String>),
    Int64(Vec<i64>),
    Float64(Vec<Option<f64>>),
    Bool(Vec<bool>),
}

impl Column {
    fn into_array(self) -> ArrayRef {
        match self {
            Column::Utf8(v) => Arc::new(StringArray::from(v)),
            Column::Int64(v) => Arc::new(Int64Array::from(v)),
            Column::Float64(v) => Arc::new(Float64Array::from(v)),
            Column::Bool(v) => Arc::new(BooleanArray::from(v)),
        }
    }
}

/// Writes named columns as one parquet file (snappy), atomically (`-`: to standard output).
pub fn write_table(path: &Path, columns: Vec<(&str, Column)>) -> Result<()> {
    write_table_with_metadata(path, columns, None)
}

/// [`write_table`], with key-value metadata in the file's footer.
pub(crate) fn write_table_with_metadata(
    path: &Path,
    columns: Vec<(&str, Column)>,
    metadata: Option<Vec<parquet::file::metadata::KeyValue>>,
) -> Result<()> {
    let name = describe(path, true);
    let err = |e: &dyn std::fmt::Display| Error::Parquet {
        path: name.clone().into(),
        detail: e.to_string(),
    };
    // A failed write (a full disk, a reader that closed the pipe) stays an I/O error, so a
    // closed pipe ends the run quietly as in other Unix tools.
    let write_err = |e: parquet::errors::ParquetError| match &e {
        parquet::errors::ParquetError::External(inner) => {
            match inner.downcast_ref::<std::io::Error>() {
                Some(io) => Error::io(&name, std::io::Error::new(io.kind(), io.to_string())),
                None => err(&e),
            }
        }
        _ => err(&e),
    };
    let batch = RecordBatch::try_from_iter(columns.into_iter().map(|(n, c)| (n, c.into_array())))
        .map_err(|e| err(&e))?;
    // The same pairs go into the Arrow schema too, where pyarrow and polars show them.
    let batch = match &metadata {
        None => batch,
        Some(kv) => {
            let pairs: std::collections::HashMap<String, String> = kv
                .iter()
                .map(|k| (k.key.clone(), k.value.clone().unwrap_or_default()))
                .collect();
            let schema = batch.schema().as_ref().clone().with_metadata(pairs);
            batch.with_schema(Arc::new(schema)).map_err(|e| err(&e))?
        }
    };
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_key_value_metadata(metadata)
        .build();
    write_atomically(path, |out| {
        let mut writer =
            ArrowWriter::try_new(out, batch.schema(), Some(props)).map_err(write_err)?;
        writer.write(&batch).map_err(write_err)?;
        writer.close().map_err(write_err)?;
        Ok(())
    })
}

/// Reads a parquet file (`-`: standard input) and decodes it with `decode` (given the name to
/// report, the bytes and their size), turning a panic inside the parquet decoder into an error.
pub(crate) fn read_parquet<T>(
    path: &Path,
    decode: impl FnOnce(&Path, bytes::Bytes, u64) -> Result<T>,
) -> Result<T> {
    // Decoded from memory: on a file, a corrupt page header that declares 2³¹ elements to
    // skip costs the parquet crate a read call each, close to a minute for 2 KiB (found by
    // the fuzz test); from memory it costs a second.
    let bytes = read_input(path, MAX_STDIN_BYTES)?;
    let path = &PathBuf::from(describe(path, false));
    let size = bytes.len() as u64;
    let bytes = bytes::Bytes::from(bytes);
    contain(|| decode(path, bytes, size)).unwrap_or_else(|panic| {
        Err(Error::Parquet {
            path: path.into(),
            detail: format!("the file is corrupt (the decoder stopped at: {panic})"),
        })
    })
}

/// A small table read whole: the wanted columns, each cast to its type, in the order asked.
pub struct Table {
    columns: Vec<(String, ArrayRef)>,
    rows: usize,
    metadata: Vec<(String, String)>,
}

impl Table {
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// The value of `key` in the file's key-value metadata.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        let found = self.metadata.iter().find(|(k, _)| k == key);
        found.map(|(_, v)| v.as_str())
    }
    fn column(&self, name: &str) -> &ArrayRef {
        &self
            .columns
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("column '{name}' was not asked for"))
            .1
    }
    /// Column `name` as the array type it was read as, each value through `value` (`None`
    /// for a null).
    fn each<A: Array + 'static, T>(
        &self,
        name: &str,
        value: impl Fn(&A, usize) -> T,
    ) -> Vec<Option<T>> {
        let a = self.column(name).as_any().downcast_ref::<A>();
        let a = a.expect("read as the type asked for");
        (0..a.len())
            .map(|i| (!a.is_null(i)).then(|| value(a, i)))
            .collect()
    }
    /// Column `name` (read as Utf8); a null is the empty string.
    pub fn text(&self, name: &str) -> Vec<String> {
        let v = self.each(name, |a: &StringArray, i| a.value(i).to_string());
        v.into_iter().map(Option::unwrap_or_default).collect()
    }
    /// Column `name` (read as Float64); a null is `None`.
    pub fn floats(&self, name: &str) -> Vec<Option<f64>> {
        self.each(name, |a: &Float64Array, i| a.value(i))
    }
    /// Column `name` (read as Int64); a null is `None`.
    pub fn ints(&self, name: &str) -> Vec<Option<i64>> {
        self.each(name, |a: &Int64Array, i| a.value(i))
    }
    /// Column `name` (read as Boolean); a null is false.
    pub fn bools(&self, name: &str) -> Vec<bool> {
        let v = self.each(name, |a: &BooleanArray, i| a.value(i));
        v.into_iter().map(|b| b.unwrap_or(false)).collect()
    }
}

/// A reader of a parquet file's `bytes` (`size` of them) whose footer has been checked
/// ([`check_column_chunks`]); errors name `path`.
pub(crate) fn checked_reader(
    path: &Path,
    bytes: bytes::Bytes,
    size: u64,
) -> Result<ParquetRecordBatchReaderBuilder<bytes::Bytes>> {
    let err = |d: String| Error::Parquet {
        path: path.into(),
        detail: d,
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| err(format!("not a readable parquet file ({e})")))?;
    check_column_chunks(builder.metadata(), size).map_err(err)?;
    Ok(builder)
}

/// Reads the `wanted` columns of a small parquet table (`-`: standard input), each cast to its
/// type; `what` names the table's columns for the message when one is missing.
pub fn read_table(path: &Path, wanted: &[(&str, DataType)], what: &str) -> Result<Table> {
    read_parquet(path, |path, bytes, size| {
        let err = |d: String| Error::Parquet {
            path: path.into(),
            detail: d,
        };
        let builder = checked_reader(path, bytes, size)?;
        let metadata = builder
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .into_iter()
            .flatten()
            .filter_map(|kv| Some((kv.key.clone(), kv.value.clone()?)))
            .collect();
        let mut parts: Vec<Vec<ArrayRef>> = vec![Vec::new(); wanted.len()];
        let mut rows = 0;
        for batch in builder.build().map_err(|e| err(e.to_string()))? {
            let batch = batch.map_err(|e| err(e.to_string()))?;
            rows += batch.num_rows();
            for ((name, ty), part) in wanted.iter().zip(&mut parts) {
                part.push(typed_column(&batch, name, ty, what).map_err(err)?);
            }
        }
        let mut columns = Vec::with_capacity(wanted.len());
        for ((name, ty), part) in wanted.iter().zip(parts) {
            let refs: Vec<&dyn Array> = part.iter().map(|a| a.as_ref()).collect();
            let whole = if refs.is_empty() {
                arrow::array::new_empty_array(ty)
            } else {
                arrow::compute::concat(&refs).map_err(|e| err(e.to_string()))?
            };
            columns.push((name.to_string(), whole));
        }
        Ok(Table {
            columns,
            rows,
            metadata,
        })
    })
}

/// Column `name` of `batch` cast to `ty`, or why it cannot be (`columns` lists what the table
/// should hold, for the message).
pub(crate) fn typed_column(
    batch: &RecordBatch,
    name: &str,
    ty: &DataType,
    columns: &str,
) -> std::result::Result<ArrayRef, String> {
    let c = batch
        .column_by_name(name)
        .ok_or_else(|| format!("no column '{name}'; {columns}"))?;
    let from = c.data_type();
    if !same_family(from, ty) {
        return Err(format!("column '{name}' is {from}, expected {ty}"));
    }
    arrow::compute::cast(c, ty).map_err(|e| format!("column '{name}' ({from}) as {ty}: {e}"))
}

/// Checks that every column chunk the footer declares lies inside the file: the parquet
/// crate trusts these offsets (and panics on a negative one), so a corrupt footer must be
/// refused before any page is read.
pub(crate) fn check_column_chunks(
    metadata: &parquet::file::metadata::ParquetMetaData,
    file_size: u64,
) -> std::result::Result<(), String> {
    for (g, group) in metadata.row_groups().iter().enumerate() {
        if group.num_rows() < 0 {
            return Err(format!("row group {g} declares {} rows", group.num_rows()));
        }
        for column in group.columns() {
            let start = column
                .dictionary_page_offset()
                .unwrap_or(column.data_page_offset());
            let length = column.compressed_size();
            let inside = start >= 0
                && length >= 0
                && (start as u64)
                    .checked_add(length as u64)
                    .is_some_and(|end| end <= file_size);
            if !inside {
                return Err(format!(
                    "column chunk {} of row group {g} declares bytes {start}..{start}+{length}, \
                     outside the file's {file_size} bytes: the file is corrupt",
                    column.column_path()
                ));
            }
        }
    }
    Ok(())
}

/// Whether a column of type `from` holds what a `to` column holds, so that it can be cast: a
/// file that pandas, polars or DuckDB re-saved may store strings as `LargeUtf8`, views or
/// dictionaries (pandas' categoricals), and numbers in other widths.
fn same_family(from: &DataType, to: &DataType) -> bool {
    let stringy = |t: &DataType| match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => matches!(**v, DataType::Utf8 | DataType::LargeUtf8),
        _ => false,
    };
    match to {
        DataType::Utf8 => stringy(from),
        DataType::Int64 => from.is_integer(),
        DataType::Float64 => from.is_floating() || matches!(from, DataType::Null),
        _ => from == to,
    }
}
