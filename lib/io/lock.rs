//! Output claims: an advisory lock (`flock`) per output file, so that two runs never write
//! the same output, and the cleanup of temporaries a killed run left.

use crate::error::{Error, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

/// The temporary sibling that an output is written to before it is renamed into place:
/// `.NAME.PID.tmp`, with `suffix` appended for writers that choose a format by extension.
pub fn temporary_sibling(path: &Path, suffix: &str) -> PathBuf {
    path.with_file_name(format!(
        ".{}.{}.tmp{suffix}",
        file_name(path),
        std::process::id()
    ))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// An exclusive claim on one output path, held until dropped: a lock on the hidden sibling
/// `.NAME.lock`. The output itself cannot carry the lock, since it is replaced by a rename.
#[derive(Debug)]
pub struct OutputLock {
    lock_path: PathBuf,
    _file: File,
}

impl OutputLock {
    /// Claims `output`, or fails at once, naming the run's flag, if another process holds it.
    /// Once claimed, temporaries of `output` left by a killed run are removed: no live run can
    /// be writing them, since every writer of `output` holds this lock.
    pub fn claim(flag: &str, output: &Path) -> Result<Self> {
        let lock_path = output.with_file_name(format!(".{}.lock", file_name(output)));
        loop {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
                .map_err(|e| {
                    Error::bad_file(
                        output,
                        format!("cannot write in its folder ({e}); choose a writable {flag}"),
                    )
                })?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    return Err(Error::bad_file(
                        output,
                        format!(
                            "another run is writing this {flag} (it holds {}); wait for it to \
                             finish, or choose another {flag}",
                            lock_path.display()
                        ),
                    ))
                }
                Err(TryLockError::Error(e)) => return Err(Error::io(&lock_path, e)),
            }
            // A run that was releasing its claim may have removed the file we locked; the
            // lock counts only while the path still names the file we hold.
            if same_file(&file, &lock_path) {
                remove_stale_temporaries(output);
                return Ok(OutputLock {
                    lock_path,
                    _file: file,
                });
            }
        }
    }
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        // Removed while still locked (the file closes after this), so a waiting run re-opens
        // the path and never holds a lock on a file no longer there.
        let _ = std::fs::remove_file(&self.lock_path);
    }
}

#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_: &File, path: &Path) -> bool {
    path.exists()
}

/// Removes `.NAME.PID.tmp*` beside `output`: what a run killed mid-write left behind.
fn remove_stale_temporaries(output: &Path) {
    let prefix = format!(".{}.", file_name(output));
    let dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let tail = &rest[digits..];
        if digits > 0 && (tail == ".tmp" || tail.starts_with(".tmp.")) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_is_exclusive_until_dropped_and_clears_stale_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("ck.npz");
        for stale in [".ck.npz.123.tmp", ".ck.npz.9.tmp.png"] {
            std::fs::write(dir.path().join(stale), b"partial").unwrap();
        }
        // Another output's temporary, and a file that only looks alike, are kept.
        for kept in [".ck.npz.resume.npz.5.tmp", ".ck.npz.x.tmp"] {
            std::fs::write(dir.path().join(kept), b"").unwrap();
        }
        let held = OutputLock::claim("--output", &out).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [".ck.npz.lock", ".ck.npz.resume.npz.5.tmp", ".ck.npz.x.tmp"]
        );
        let e = OutputLock::claim("--output", &out).unwrap_err().to_string();
        assert!(e.contains("another run is writing this --output"), "{e}");
        drop(held);
        assert!(!dir.path().join(".ck.npz.lock").exists());
        OutputLock::claim("--output", &out).unwrap();
    }
}
