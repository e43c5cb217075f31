//! GPT-2 itself: config, layers, KV cache, weight loading, device and dtype choice.

pub mod activations;
pub mod allocator;
mod attention_cpu;
pub mod bundled;
mod cached_values;
pub mod config;
mod decode_cpu;
pub mod device;
pub mod gpt2;
pub mod hub;
mod huge_pages;
pub mod kernels;
pub mod kv_cache;
pub mod loader;
mod prefill_cpu;
mod q8;
pub mod safetensors_file;
pub mod save;
pub mod source;

pub use config::Gpt2Config;
pub use gpt2::{Gpt2, Mode};
pub use kv_cache::KvCache;
pub use loader::{LoadedModel, ModelFiles};
