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
    /// A setting outside what it may be, named by the library's own term for it (the field of
    /// its settings, `meta_lr`); a binary names it by its flag ([`Error::naming_settings`]).
    #[error("invalid setting: {setting} must be {bound}, got {value}")]
    Setting {
        setting: &'static str,
        bound: String,
        value: String,
    },
    /// Settings that do not go together; the text names each setting in backticks
    /// (`` `base` ``), as every message the library words itself does ([`Error::naming_settings`]).
    #[error("invalid setting: {0}")]
    Settings(String),
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
    /// [`Error::Setting`]: `setting` must be `bound` (which may name other settings in
    /// backticks), and is `value`.
    pub fn setting(setting: &'static str, bound: impl Into<String>, value: impl ToString) -> Self {
        Error::Setting {
            setting,
            bound: bound.into(),
            value: value.to_string(),
        }
    }

    /// The message with every setting named by `name` (a binary's flag for it): the setting of
    /// [`Error::Setting`], and each backticked name in the text of any error the library words
    /// itself ("pass `restart`"). Errors that carry another's text (the system's, a parquet
    /// reader's, a path) keep it as it is.
    pub fn naming_settings(&self, name: &dyn Fn(&str) -> String) -> String {
        let rename = |text: &str| {
            let mut out = String::new();
            let mut parts = text.split('`');
            out.push_str(parts.next().unwrap_or(""));
            // Every other part lies between backticks.
            while let Some(quoted) = parts.next() {
                match parts.next() {
                    Some(rest) => {
                        out.push_str(&name(quoted));
                        out.push_str(rest);
                    }
                    None => {
                        out.push('`');
                        out.push_str(quoted);
                    }
                }
            }
            out
        };
        match self {
            Error::Setting {
                setting,
                bound,
                value,
            } => format!(
                "invalid setting: {} must be {}, got {value}",
                name(setting),
                rename(bound)
            ),
            Error::Settings(text) | Error::Config(text) => {
                format!("invalid setting: {}", rename(text))
            }
            Error::Other(text) => rename(text),
            Error::BadFile { path, detail } => format!("{}: {}", path.display(), rename(detail)),
            other => other.to_string(),
        }
    }

    pub fn bad_file(path: impl Into<PathBuf>, detail: impl Into<String>) -> Self {
        Error::BadFile {
            path: path.into(),
            detail: detail.into(),
        }
    }
}

/// Shorthand for refusing a setting ([`Error::setting`]) in a validation check.
pub(crate) fn setting_error<T>(
    setting: &'static str,
    bound: impl Into<String>,
    value: impl ToString,
) -> Result<T> {
    Err(Error::setting(setting, bound, value))
}

/// Shorthand for refusing settings that do not go together ([`Error::Settings`]).
pub(crate) fn settings_error<T>(text: impl Into<String>) -> Result<T> {
    Err(Error::Settings(text.into()))
}

/// Shorthand for returning a configuration error from a validation check.
pub(crate) fn config_error<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error::Config(msg.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The library names a setting by its own term; a binary's naming renames it and every
    /// setting named in a message the library words itself, and leaves the text of others alone.
    #[test]
    fn a_setting_is_named_by_the_library_and_renamed_by_a_binary() {
        let e = Error::setting("steps", "a positive multiple of `unroll` (20)", 30);
        assert_eq!(
            e.to_string(),
            "invalid setting: steps must be a positive multiple of `unroll` (20), got 30"
        );
        let flag = |s: &str| format!("--{}", s.replace('_', "-"));
        assert_eq!(
            e.naming_settings(&flag),
            "invalid setting: --steps must be a positive multiple of --unroll (20), got 30"
        );
        let both = Error::Settings("`base_form` needs `base`; a stray ` stays".into());
        assert_eq!(
            both.naming_settings(&flag),
            "invalid setting: --base-form needs --base; a stray ` stays"
        );
        let advice = Error::bad_file("state.npz", "another architecture; pass `restart`");
        assert_eq!(
            advice.naming_settings(&flag),
            "state.npz: another architecture; pass --restart"
        );
        let theirs = Error::Parquet {
            path: "t.parquet".into(),
            detail: "column `kept` as it is".into(),
        };
        assert_eq!(
            theirs.naming_settings(&flag),
            "t.parquet: parquet: column `kept` as it is"
        );
    }
}
