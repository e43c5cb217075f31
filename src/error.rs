//! One error type for the library; every variant names the file, key or value at fault.

use std::path::Path;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Config { file: String, message: String },
    #[error("{file}: {message}")]
    Weights { file: String, message: String },
    #[error("{file}: {message}")]
    Tokenizer { file: String, message: String },
    /// A bad flag or setting from the user: exit status 2.
    #[error("{0}")]
    Usage(String),
    #[error("model error: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// The process exit status this error maps to: 2 for usage errors, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 2,
            _ => 1,
        }
    }
}
