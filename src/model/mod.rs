//! GPT-2 itself: config, layers, KV cache, and the backends its forward pass dispatches to.

pub mod config;
mod cpu;
pub mod gpt2;
pub mod kv_cache;

pub use config::Gpt2Config;
pub use gpt2::{Gpt2, Mode};
pub use kv_cache::KvCache;
