//! What `--model` names: `bundled`, or a local folder in Hugging Face layout.

use std::path::Path;

use super::loader::ModelFiles;
use crate::error::{Error, Result};

/// Resolves a `--model` value to the checkpoint's files.
pub fn resolve(spec: &str) -> Result<ModelFiles> {
    if spec == "bundled" {
        return super::bundled::files();
    }
    let path = Path::new(spec);
    if path.exists() {
        return ModelFiles::from_folder(path);
    }
    Err(Error::Usage(format!(
        "--model {spec}: no such folder (give `bundled` or a folder with config.json, weights and a tokenizer)"
    )))
}
