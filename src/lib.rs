//! gpt2-tui: a GPT-2 decoder in candle, with a terminal interface and a pipe mode.

pub mod cli;
pub mod commands;
pub mod config;
pub mod conversation;
pub mod error;
pub mod generate;
pub mod inference;
pub mod inspect;
pub mod model;
pub mod models_cmd;
pub mod perplexity;
pub mod pipe;
pub mod session;
pub mod tokenizer;
pub mod ui;

pub use error::{Error, Result};
