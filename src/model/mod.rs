//! GPT-2 itself: the config, the layers with their tensor forward (`layers.rs`), the output head
//! (`head.rs`), which may also serve the token lookups, the model and
//! its one forward dispatcher (`gpt2.rs`), the KV cache, the q8_0 weight format, the
//! initialisation table, and the CPU backend (`cpu/`) the dispatcher picks on the CPU.

pub mod config;
mod cpu;
pub mod gpt2;
mod head;
pub mod init;
pub mod kv_cache;
mod layers;
pub mod q8;

pub use config::Gpt2Config;
pub use gpt2::{Gpt2, Mode};
pub use kv_cache::KvCache;
