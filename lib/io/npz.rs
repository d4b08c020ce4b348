//! `.npz` archives: reading with errors that name the file and the array, and writing
//! through memory so that a failed write leaves nothing behind.

use super::npy::{self, NpyElement};
use super::{describe, is_stream, read_input, write_atomically, MAX_STDIN_BYTES};
use crate::error::{Error, Result};
use ndarray::{Array, ArrayD, Dimension};
use ndarray_npy::{NpzWriter, WritableElement};
use std::fs::File;
use std::io::{Cursor, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The largest array member read, in bytes (8 GiB): far above any spec or checkpoint the
/// command-line bounds allow (2²⁸ float64 elements, 2 GiB), and below what a compressed
/// member could claim to expand to.
const MAX_MEMBER_BYTES: u64 = 1 << 33;

/// An open `.npz` archive whose errors name the file and the array.
pub struct Npz {
    path: PathBuf,
    zip: zip::ZipArchive<Source>,
    /// Array names without numpy's `.npy` suffix, in archive order.
    names: Vec<String>,
}

impl Npz {
    /// Opens the archive at `path`; `-` reads it from standard input. What cannot seek (a
    /// pipe, standard input) is read into memory first.
    pub fn open(path: &Path) -> Result<Self> {
        let source = if is_stream(path) {
            Source::Memory(Cursor::new(read_input(path, MAX_STDIN_BYTES)?))
        } else {
            Source::File(File::open(path).map_err(|e| Error::io(path, e))?)
        };
        let path = PathBuf::from(describe(path, false));
        let zip = zip::ZipArchive::new(source).map_err(|e| Error::NotNpz {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        let names = zip
            .file_names()
            .map(|n| n.strip_suffix(".npy").unwrap_or(n).to_string())
            .collect();
        Ok(Npz { path, zip, names })
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

    /// The bytes of member `name`, read no further than its declared size: memory grows
    /// with the bytes actually present, never with what a header claims.
    fn member_bytes(&mut self, name: &str) -> Result<Vec<u8>> {
        let member = format!("{name}.npy");
        let member = if self.zip.index_for_name(&member).is_some() {
            member
        } else {
            name.to_string()
        };
        let path = self.path.clone();
        let bad = |d: String| Error::bad_file(&path, format!("array '{name}': {d}"));
        let mut file = self.zip.by_name(&member).map_err(|e| bad(e.to_string()))?;
        let size = file.size();
        if size > MAX_MEMBER_BYTES {
            return Err(bad(format!(
                "declares {size} bytes, over the {MAX_MEMBER_BYTES}-byte limit of one array"
            )));
        }
        let mut bytes = Vec::new();
        (&mut file)
            .take(size)
            .read_to_end(&mut bytes)
            .map_err(|e| bad(format!("corrupt data ({e})")))?;
        // Reading past the declared end is what makes the zip reader check the CRC.
        let mut probe = [0u8; 1];
        match file.read(&mut probe) {
            Ok(0) => Ok(bytes),
            Ok(_) => Err(bad("holds more bytes than it declares".into())),
            Err(e) => Err(bad(format!("corrupt data ({e})"))),
        }
    }

    /// Reads array `name` of any shape as element type `A`, from any numeric type, byte
    /// order and memory order numpy writes (numpy's float64 default becomes f32 where f32 is
    /// wanted), always in C order, since everything after this reads rows as slices.
    pub fn array<A: NpyElement>(&mut self, name: &str) -> Result<ArrayD<A>> {
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
        let bytes = self.member_bytes(name)?;
        npy::decode(&bytes).map_err(|detail| self.bad(format!("array '{name}': {detail}")))
    }

    /// Reads array `name` and checks its number of dimensions.
    pub fn array_nd<A: NpyElement, D: Dimension>(&mut self, name: &str) -> Result<Array<A, D>> {
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

/// Where an archive is read from: a file, or standard input's bytes (zip needs to seek).
enum Source {
    File(File),
    Memory(Cursor<Vec<u8>>),
}

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Source::File(f) => f.read(buf),
            Source::Memory(m) => m.read(buf),
        }
    }
}

impl Seek for Source {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        match self {
            Source::File(f) => f.seek(pos),
            Source::Memory(m) => m.seek(pos),
        }
    }
}

/// Builds an `.npz` archive in memory, then writes it atomically: a write that fails (a full
/// disk) is one error about the file, with no half-finished archive left to clean up.
pub fn write_npz(path: &Path, fill: impl FnOnce(&mut NpzArrays) -> Result<()>) -> Result<()> {
    let mut arrays = NpzArrays { items: Vec::new() };
    fill(&mut arrays)?;
    let mut buffer = Cursor::new(Vec::new());
    {
        let mut npz = NpzWriter::new(&mut buffer);
        for item in &arrays.items {
            item.write(&mut npz)
                .map_err(|e| Error::bad_file(path, format!("writing npz: {e}")))?;
        }
        npz.finish()
            .map_err(|e| Error::bad_file(path, format!("writing npz: {e}")))?;
    }
    let bytes = buffer.into_inner();
    write_atomically(path, |out| {
        out.write_all(&bytes).map_err(|e| Error::io(path, e))
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

type MemoryNpz<'a> = NpzWriter<&'a mut Cursor<Vec<u8>>>;

trait NpzItem {
    fn write(&self, npz: &mut MemoryNpz<'_>) -> std::result::Result<(), String>;
}

impl<A: WritableElement, D: Dimension> NpzItem for (String, Array<A, D>) {
    fn write(&self, npz: &mut MemoryNpz<'_>) -> std::result::Result<(), String> {
        npz.add_array(self.0.as_str(), &self.1)
            .map_err(|e| e.to_string())
    }
}
