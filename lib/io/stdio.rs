//! `-` for standard input and output, as Unix tools use it: every input flag that
//! names a spec, checkpoint or trajectory file accepts `-` for standard input, and every output
//! flag accepts `-` for standard output.
//!
//! Standard input is read into memory whole, since npz (zip) and parquet are read by seeking;
//! [`MAX_STDIN_BYTES`] bounds it. Standard output is written as it is, with no temporary file,
//! no rename and no lock.

use crate::error::{Error, Result};
use std::fs::File;
use std::io::{IsTerminal, Read};
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// The name that means standard input as an input and standard output as an output.
pub const STDIO: &str = "-";

/// The most bytes read from standard input (8 GiB, as for one npz member): above any spec,
/// checkpoint or trajectory file the command-line bounds allow, and a clear error, rather than
/// the machine running out of memory, when something endless is piped in.
pub const MAX_STDIN_BYTES: u64 = 1 << 33;

/// Whether `path` is `-`, standard input or output.
pub fn is_stdio(path: &Path) -> bool {
    path.as_os_str() == STDIO
}

/// How errors and progress lines name a path: `-` is "standard input" or "standard output".
pub fn describe(path: &Path, as_output: bool) -> String {
    match (is_stdio(path), as_output) {
        (true, false) => "standard input".into(),
        (true, true) => "standard output".into(),
        (false, _) => path.display().to_string(),
    }
}

/// Whether standard input has been read; a second read would find it empty.
static STDIN_TAKEN: AtomicBool = AtomicBool::new(false);

/// Reads a whole input into memory: a file, a named pipe or device (`<(…)`, `/dev/stdin`), or,
/// for `-`, standard input, once. What is not a regular file is read to its end, refusing more
/// than `limit` bytes.
pub fn read_input(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let name = describe(path, false);
    let stream: Box<dyn Read> = if is_stdio(path) {
        if STDIN_TAKEN.swap(true, Ordering::SeqCst) {
            return Err(Error::bad_file(
                &name,
                "already read by another input; only one input can be -",
            ));
        }
        Box::new(std::io::stdin().lock())
    } else {
        let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
        if file.metadata().is_ok_and(|m| m.is_file()) {
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)
                .map_err(|e| Error::io(path, e))?;
            return Ok(bytes);
        }
        Box::new(file)
    };
    let mut bytes = Vec::new();
    stream
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(&name, e))?;
    if bytes.len() as u64 > limit {
        return Err(Error::bad_file(
            &name,
            format!("more than {limit} bytes; write it to a file and pass the file's name"),
        ));
    }
    if bytes.is_empty() {
        return Err(Error::bad_file(
            &name,
            "is empty; pipe a file into it, or name a file",
        ));
    }
    Ok(bytes)
}

/// Standard output as a file of its own (a duplicate of descriptor 1), so that it is written
/// through the same code as any other output.
pub fn stdout_file() -> Result<File> {
    std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map(File::from)
        .map_err(|e| Error::io("standard output", e))
}

/// Checks the `-` among a run's inputs and outputs before any work: at most one input and one
/// output may be `-`, an output `-` must not be a terminal (binary data would garble it), and
/// an input `-` must not be one (the run would wait for typing).
pub fn check_stdio(outputs: &[(&str, &Path)], inputs: &[(&str, &Path)]) -> Result<()> {
    let on = |list: &[(&str, &Path)]| -> Vec<String> {
        list.iter()
            .filter(|(_, p)| is_stdio(p))
            .map(|(flag, _)| flag.to_string())
            .collect()
    };
    let (outs, ins) = (on(outputs), on(inputs));
    if outs.len() > 1 {
        return Err(Error::Config(format!(
            "{} are both -, standard output; only one output can go there",
            outs.join(" and ")
        )));
    }
    if ins.len() > 1 {
        return Err(Error::Config(format!(
            "{} are both -, standard input; only one input can come from there",
            ins.join(" and ")
        )));
    }
    if let Some(flag) = outs.first() {
        if std::io::stdout().is_terminal() {
            return Err(Error::Config(format!(
                "{flag} - would write binary data to the terminal; redirect standard output \
                 to a file or a pipe"
            )));
        }
    }
    if let Some(flag) = ins.first() {
        if std::io::stdin().is_terminal() {
            return Err(Error::Config(format!(
                "{flag} - reads standard input, which is the terminal; pipe a file into it"
            )));
        }
    }
    Ok(())
}
