//! `gpt2-tui perplexity FILE`: the text's perplexity and bits per byte.

use std::io::Write;

use super::stdout_error;
use crate::cli::{CommonArgs, ReportFormat};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::load::load_session;

pub(super) fn run(
    common: &CommonArgs,
    config: &Config,
    file: &std::path::Path,
    stride: Option<usize>,
    format: ReportFormat,
) -> Result<()> {
    let bytes = std::fs::read(file).map_err(|e| Error::io(file, e))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        Error::Other(format!(
            "{}: not valid UTF-8 (byte {})",
            file.display(),
            e.utf8_error().valid_up_to()
        ))
    })?;
    let session = load_session(common, config)?;
    let score = crate::generate::perplexity::score(&session, &text, stride)?;
    let mut out = std::io::stdout().lock();
    let written = match format {
        ReportFormat::Json => writeln!(out, "{}", serde_json::to_string(&score).expect("plain data")),
        ReportFormat::Text => writeln!(
            out,
            "file: {}\nmodel: {}\ntokens: {} ({} scored, window {}, stride {})\nmean nll: {:.6}\nperplexity: {:.4}\nbits per byte: {:.4}",
            file.display(),
            session.name,
            score.tokens,
            score.tokens_scored,
            score.window,
            score.stride,
            score.mean_nll,
            score.perplexity,
            score.bits_per_byte
        ),
    };
    written.map_err(stdout_error)
}
