//! gpt2-tui: a GPT-2 decoder in candle, with a terminal interface and a pipe mode.
//!
//! The arrows run one way: `tui`/`cmd` → `engine` → `generate` → `model` → `kernels`;
//! `load` builds a session from `weights` on the device `runtime` picks. ARCHITECTURE.md has the map.

pub mod atomic_file;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod engine;
pub mod error;
pub mod generate;
pub mod kernels;
pub mod load;
pub mod model;
pub mod runtime;
pub mod sessions;
pub mod tokenizer;
pub mod tui;
pub mod weights;

pub use error::{Error, Result};
