//! The library's error type. Every message says what was wrong and, where it can, what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a readable .npz file ({detail})")]
    NotNpz { path: PathBuf, detail: String },
    #[error("{path}: {detail}")]
    BadFile { path: PathBuf, detail: String },
    #[error("{path}: parquet: {detail}")]
    Parquet { path: PathBuf, detail: String },
    #[error("invalid setting: {0}")]
    Config(String),
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
    pub fn bad_file(path: impl Into<PathBuf>, detail: impl Into<String>) -> Self {
        Error::BadFile {
            path: path.into(),
            detail: detail.into(),
        }
    }
}

/// Shorthand for returning a configuration error from a validation check.
pub(crate) fn config_error<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error::Config(msg.into()))
}
