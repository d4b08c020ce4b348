//! File plumbing shared by every format: atomic writes, output locks, checked `.npz` reading
//! and writing.

mod contain;
mod lock;
mod npy;
mod npz;

pub use contain::contain;
pub use lock::{temporary_sibling, OutputLock};
pub use npy::NpyElement;
pub use npz::{write_npz, Npz, NpzArrays};

use crate::error::{Error, Result};
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
    let tmp = temporary_sibling(path, "");
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
