//! File plumbing shared by every format: atomic writes and checked `.npz` reading.

use crate::error::{Error, Result};
use ndarray::{Array, ArrayD, Dimension, IxDyn};
use ndarray_npy::{NpzReader, NpzWriter, ReadableElement, WritableElement};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Writes a file through a temporary sibling that is renamed into place only after `write`
/// succeeds, so a failed or killed run never leaves a partial output under the real name.
pub fn write_atomically<T>(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<T>,
) -> Result<T> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(Error::bad_file(
            path,
            format!("folder {} does not exist; create it first", dir.display()),
        ));
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let mut out = BufWriter::new(file);
        let value = write(&mut out)?;
        out.flush().map_err(|e| Error::io(&tmp, e))?;
        let file = out
            .into_inner()
            .map_err(|e| Error::io(&tmp, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
        Ok(value)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// An open `.npz` archive whose errors name the file and the array.
pub struct Npz {
    path: PathBuf,
    reader: NpzReader<File>,
    names: Vec<String>,
}

impl Npz {
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let mut reader = NpzReader::new(file).map_err(|e| Error::NotNpz {
            path: path.into(),
            detail: e.to_string(),
        })?;
        let names = reader
            .names()
            .map_err(|e| Error::NotNpz {
                path: path.into(),
                detail: e.to_string(),
            })?
            .into_iter()
            .map(|n| n.trim_end_matches(".npy").to_string())
            .collect();
        Ok(Npz {
            path: path.into(),
            reader,
            names,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn has(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    fn bad(&self, detail: String) -> Error {
        Error::bad_file(&self.path, detail)
    }

    /// Reads array `name` of any shape, with the element type `A`. numpy's default float64 is
    /// accepted where `A` is f32 and converted, since `numpy.savez` users rarely cast.
    pub fn array<A: NpzElement>(&mut self, name: &str) -> Result<ArrayD<A>> {
        if !self.has(name) {
            return Err(self.bad(format!(
                "has no array '{name}' (it holds: {})",
                if self.names.is_empty() {
                    "nothing".into()
                } else {
                    self.names.join(", ")
                }
            )));
        }
        let a = A::read(&mut self.reader, name)
            .map_err(|detail| Error::bad_file(&self.path, format!("array '{name}': {detail}")))?;
        // numpy writes Fortran order too (`np.asfortranarray`); everything after this reads
        // rows as contiguous slices.
        Ok(if a.is_standard_layout() {
            a
        } else {
            a.as_standard_layout().into_owned()
        })
    }

    /// Reads array `name` and checks its number of dimensions.
    pub fn array_nd<A: NpzElement, D: Dimension>(&mut self, name: &str) -> Result<Array<A, D>> {
        let a = self.array::<A>(name)?;
        let ndim = a.ndim();
        let shape = a.shape().to_vec();
        a.into_dimensionality::<D>().map_err(|_| {
            self.bad(format!(
                "array '{name}' has shape {shape:?} ({ndim} dimensions); expected {} dimensions",
                D::NDIM.unwrap_or(0)
            ))
        })
    }

    /// Reads a scalar (0-d or 1-element) array as f64.
    pub fn scalar(&mut self, name: &str) -> Result<f64> {
        let a = self.array::<f64>(name)?;
        if a.len() != 1 {
            return Err(self.bad(format!(
                "'{name}' should be a scalar, found shape {:?}",
                a.shape()
            )));
        }
        Ok(*a.iter().next().unwrap())
    }

    /// Reads a text stored as an array of its bytes (uint8, or any integer type numpy wrote).
    pub fn text(&mut self, name: &str) -> Result<String> {
        let bytes: Vec<u8> = self.array::<i64>(name)?.iter().map(|&b| b as u8).collect();
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    pub fn scalar_or(&mut self, name: &str, default: f64) -> Result<f64> {
        if self.has(name) {
            self.scalar(name)
        } else {
            Ok(default)
        }
    }
}

/// Element types that can be read from an npz member, converting from the other float or
/// integer widths numpy commonly writes.
pub trait NpzElement: Sized + Clone {
    fn read(reader: &mut NpzReader<File>, name: &str) -> std::result::Result<ArrayD<Self>, String>;
}

fn read_as<A, F>(reader: &mut NpzReader<File>, name: &str, f: impl Fn(F) -> A) -> Option<ArrayD<A>>
where
    F: ReadableElement + Clone,
{
    reader
        .by_name::<ndarray::OwnedRepr<F>, IxDyn>(name)
        .ok()
        .map(|a| a.mapv(f))
}

macro_rules! npz_element {
    ($t:ty) => {
        impl NpzElement for $t {
            fn read(
                reader: &mut NpzReader<File>,
                name: &str,
            ) -> std::result::Result<ArrayD<$t>, String> {
                if let Ok(a) = reader.by_name::<ndarray::OwnedRepr<$t>, IxDyn>(name) {
                    return Ok(a);
                }
                read_as(reader, name, |x: f32| x as $t)
                    .or_else(|| read_as(reader, name, |x: f64| x as $t))
                    .or_else(|| read_as(reader, name, |x: i64| x as $t))
                    .or_else(|| read_as(reader, name, |x: i32| x as $t))
                    .or_else(|| read_as(reader, name, |x: u8| x as $t))
                    .or_else(|| read_as(reader, name, |x: bool| x as u8 as $t))
                    .ok_or_else(|| {
                        "unsupported element type or corrupt data (expected a numeric array)"
                            .to_string()
                    })
            }
        }
    };
}
npz_element!(f32);
npz_element!(f64);
npz_element!(i64);

/// Builds an `.npz` archive in memory order and writes it atomically.
pub fn write_npz(path: &Path, fill: impl FnOnce(&mut NpzArrays) -> Result<()>) -> Result<()> {
    let mut arrays = NpzArrays { items: Vec::new() };
    fill(&mut arrays)?;
    write_atomically(path, |out| {
        let mut npz = NpzWriter::new(out);
        for item in &arrays.items {
            item.write(&mut npz)
                .map_err(|e| Error::bad_file(path, format!("writing npz: {e}")))?;
        }
        npz.finish()
            .map_err(|e| Error::bad_file(path, format!("writing npz: {e}")))?;
        Ok(())
    })
}

/// The arrays of an npz archive under construction.
pub struct NpzArrays {
    items: Vec<Box<dyn NpzItem>>,
}

impl NpzArrays {
    pub fn add<A, D>(&mut self, name: &str, array: Array<A, D>)
    where
        A: WritableElement + 'static,
        D: Dimension + 'static,
    {
        self.items.push(Box::new((name.to_string(), array)));
    }
    pub fn scalar_f64(&mut self, name: &str, value: f64) {
        self.add(name, ndarray::arr0(value));
    }
    pub fn scalar_i64(&mut self, name: &str, value: i64) {
        self.add(name, ndarray::arr0(value));
    }
}

trait NpzItem {
    fn write(&self, npz: &mut NpzWriter<&mut BufWriter<File>>) -> std::result::Result<(), String>;
}

impl<A: WritableElement, D: Dimension> NpzItem for (String, Array<A, D>) {
    fn write(&self, npz: &mut NpzWriter<&mut BufWriter<File>>) -> std::result::Result<(), String> {
        npz.add_array(self.0.as_str(), &self.1)
            .map_err(|e| e.to_string())
    }
}
