//! File plumbing shared by every format: atomic writes, output locks, checked `.npz` reading
//! and writing, small parquet tables.

mod contain;
mod lock;
mod npy;
mod npz;
mod stdio;
pub mod table;

pub use contain::contain;
pub use lock::{temporary_sibling, OutputLock};
pub use npy::NpyElement;
pub use npz::{write_npz, Npz, NpzArrays};
pub use stdio::{check_stdio, describe, is_stdio, read_input, MAX_STDIN_BYTES, STDIO};
pub use table::{read_table, write_table, Column, Table};

use crate::error::{Error, Result};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Whether an output is opened and written as it is, never replaced by a rename: `-`
/// (standard output); anything that exists and is not a regular file or a folder (a character
/// device such as `/dev/null` or a terminal, a FIFO, a socket, or a link to one); and any path
/// that leads through `/proc` (`/dev/stdout`, `/dev/fd/N`, `/proc/self/fd/N`), which names one
/// of the process's open files whatever that file is. A temporary renamed over any of these
/// would replace the device, pipe or link itself (`-o /dev/stdout`, run as root,
/// replaced the system's `/dev/stdout` link with a file, first with stdout a pipe and, before
/// this rule, with stdout redirected to a file).
/// A file kept beside an output, `<output stem><suffix>` (the resume state, the training
/// log); none for an output written in place (standard output, a pipe, a device), which has
/// no folder of its own.
pub fn companion(output: &Path, suffix: &str) -> Option<PathBuf> {
    if is_written_in_place(output) {
        return None;
    }
    let stem = output
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Some(output.with_file_name(format!("{stem}{suffix}")))
}

pub fn is_written_in_place(path: &Path) -> bool {
    is_stream(path) || leads_through_proc(path)
}

/// Whether `path` is `-` or names a stream rather than a file: something that exists and is
/// not a regular file or a folder. Such an input cannot seek, so it is read into memory.
pub fn is_stream(path: &Path) -> bool {
    is_stdio(path) || std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

/// Whether `path`, or a link it leads through, lies in `/proc`, the kernel's view of processes.
fn leads_through_proc(path: &Path) -> bool {
    let mut p = path.to_path_buf();
    // 40 hops, as the kernel's own limit on nested links.
    for _ in 0..40 {
        let dir = match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let Ok(dir) = std::fs::canonicalize(&dir) else {
            return false;
        };
        if dir.starts_with("/proc") {
            return true;
        }
        match std::fs::read_link(&p) {
            Ok(target) => p = dir.join(target),
            Err(_) => return false,
        }
    }
    false
}

/// The file a write to `path` replaces: where `path` is a link, the file it leads to (which
/// need not exist yet), so that the rename replaces that file and the link stays a link.
pub fn replaced_file(path: &Path) -> PathBuf {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::read_link(&p) {
            Ok(target) => {
                p = match p.parent() {
                    Some(dir) => dir.join(target),
                    None => target,
                }
            }
            Err(_) => return p,
        }
    }
    path.to_path_buf()
}

/// Writes a file through a temporary sibling that is renamed into place only after `write`
/// succeeds, so a failed or killed run never leaves a partial output under the real name. An
/// output that [`is_written_in_place`] is written in place instead; a link to a regular file
/// keeps being a link, and the file it leads to is replaced.
pub fn write_atomically<T>(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<T>,
) -> Result<T> {
    if is_written_in_place(path) {
        return write_in_place(path, write);
    }
    let target = replaced_file(path);
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(Error::bad_file(
            path,
            format!("folder {} does not exist; create it first", dir.display()),
        ));
    }
    let tmp = temporary_sibling(&target, "");
    let result = (|| {
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let mut out = BufWriter::new(file);
        let value = write(&mut out)?;
        out.flush().map_err(|e| Error::io(&tmp, e))?;
        let file = out
            .into_inner()
            .map_err(|e| Error::io(&tmp, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &target).map_err(|e| Error::io(path, e))?;
        Ok(value)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes to standard output, a device, pipe or socket as it is: opened for writing (never
/// created or renamed; truncated, which a pipe or device ignores and a regular file behind
/// `/dev/stdout` needs, as a shell's `>` does), written, flushed.
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
            .truncate(true)
            .open(path)
            .map_err(|e| Error::io(&name, e))?
    };
    let mut out = BufWriter::new(file);
    let value = write(&mut out)?;
    out.flush().map_err(|e| Error::io(&name, e))?;
    Ok(value)
}

/// Puts a finished temporary file in place of `path`: renamed over it (or over the file a
/// link leads to), or, where `path` [`is_written_in_place`], copied into it and removed.
pub fn install(tmp: &Path, path: &Path) -> Result<()> {
    if is_written_in_place(path) {
        let bytes = std::fs::read(tmp).map_err(|e| Error::io(tmp, e))?;
        let _ = std::fs::remove_file(tmp);
        return write_in_place(path, |out| {
            out.write_all(&bytes)
                .map_err(|e| Error::io(describe(path, true), e))
        });
    }
    std::fs::rename(tmp, replaced_file(path)).map_err(|e| Error::io(path, e))
}
