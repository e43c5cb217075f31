//! The default model, embedded in the binary: a small GPT-2 trained here on Shakespeare's plays
//! by `examples/train` (see `assets/MODEL_CARD.md`). `--model bundled` names it, and it needs
//! no file beside the program and no network.

use super::loader::{Bytes, ModelFiles, TokenizerFiles, WeightFiles};
use crate::error::Result;

/// The name shown for the bundled model.
pub const NAME: &str = "bundled (GPT-2 Shakespeare)";

static CONFIG: &[u8] = include_bytes!("../../assets/model/config.json");
static WEIGHTS: &[u8] = include_bytes!("../../assets/model/model.safetensors");
static TOKENIZER: &[u8] = include_bytes!("../../assets/model/tokenizer.json");

pub fn files() -> Result<ModelFiles> {
    Ok(ModelFiles {
        name: NAME.into(),
        config: Bytes::Static(CONFIG),
        weights: WeightFiles::Safetensors(vec![Bytes::Static(WEIGHTS)]),
        tokenizer: TokenizerFiles::Json(Bytes::Static(TOKENIZER)),
    })
}
