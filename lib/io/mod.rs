//! File plumbing shared by every format: atomic writes, output locks, checked `.npz` reading
//! and writing.

mod contain;
mod lock;
mod npy;
mod npz;
mod stdio;

pub use contain::contain;
pub use lock::{temporary_sibling, OutputLock};
pub use npy::NpyElement;
pub use npz::{write_npz, Npz, NpzArrays};
pub use stdio::{check_stdio, describe, is_stdio, read_input, MAX_STDIN_BYTES, STDIO};

use crate::error::{Error, Result};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Whether `path` names something that exists and is not a regular file or a folder (a
/// character device such as `/dev/null` or a terminal, a FIFO, a socket, or a link to one).
/// Such an output is written in place: a temporary renamed over it would replace the device
/// or pipe itself (issue #14: `-o /dev/stdout`, run as root, once replaced the system's
/// `/dev/stdout` link with a file).
pub fn is_special(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

/// Writes a file through a temporary sibling that is renamed into place only after `write`
/// succeeds, so a failed or killed run never leaves a partial output under the real name. An
/// output that [`is_special`], or `-` (standard output), is written in place instead.
pub fn write_atomically<T>(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<T>,
) -> Result<T> {
    if is_stdio(path) || is_special(path) {
        return write_in_place(path, write);
    }
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

/// Writes to standard output, a device, pipe or socket as it is: opened for writing (never
/// created, truncated or renamed), written, flushed.
fn write_in_place<T>(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<T>,
) -> Result<T> {
    let name = describe(path, true);
    let file = if is_stdio(path) {
        stdio::stdout_file()?
    } else {
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| Error::io(&name, e))?
    };
    let mut out = BufWriter::new(file);
    let value = write(&mut out)?;
    out.flush().map_err(|e| Error::io(&name, e))?;
    Ok(value)
}

/// Puts a finished temporary file in place of `path`: renamed over it, or, where `path` is `-`
/// or [`is_special`], copied into it and removed.
pub fn install(tmp: &Path, path: &Path) -> Result<()> {
    if is_stdio(path) || is_special(path) {
        let bytes = std::fs::read(tmp).map_err(|e| Error::io(tmp, e))?;
        let _ = std::fs::remove_file(tmp);
        return write_in_place(path, |out| {
            out.write_all(&bytes)
                .map_err(|e| Error::io(describe(path, true), e))
        });
    }
    std::fs::rename(tmp, path).map_err(|e| Error::io(path, e))
}
