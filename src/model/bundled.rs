//! The default model, embedded in the binary.

use super::loader::ModelFiles;
use crate::error::{Error, Result};

pub fn files() -> Result<ModelFiles> {
    Err(Error::Usage(
        "this build has no bundled model yet; pass --model DIR".into(),
    ))
}
