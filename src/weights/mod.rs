//! Bytes to named tensors: model sources (bundled, folder, hub), checkpoint files, saving, and
//! the cache of quantized models.

pub mod bundled;
pub mod gguf;
pub mod hub;
pub mod layout;
pub mod loader;
pub mod quantized_cache;
pub mod safetensors_file;
pub mod save;
pub mod source;

pub use loader::{LoadedModel, ModelFiles};
