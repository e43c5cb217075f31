//! `gpt2-tui tokenize [TEXT]`: one JSON line per token of the text.

use std::io::Write;

use super::{pipe, stdout_error};
use crate::cli::CommonArgs;
use crate::config::Config;
use crate::error::Result;
use crate::load::load_session;

pub(super) fn run(common: &CommonArgs, config: &Config, text: Option<&str>) -> Result<()> {
    let text = match text {
        Some(t) => t.to_string(),
        None => pipe::read_prompt(std::io::stdin().lock())?,
    };
    let session = load_session(common, config)?;
    let mut out = std::io::stdout().lock();
    for row in crate::engine::inspect::token_rows(session.tokenizer(), &text)? {
        writeln!(out, "{}", serde_json::to_string(&row).expect("plain data"))
            .map_err(stdout_error)?;
    }
    Ok(())
}
