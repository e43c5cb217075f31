//! `gpt2-tui perplexity FILE`: the text's perplexity and bits per byte.

use std::io::Write;

use super::{read_text, stdout_error};
use crate::cli::{CommonArgs, ReportFormat};
use crate::config::Config;
use crate::error::Result;
use crate::generate::perplexity::Score;
use crate::load::load_session;

pub(super) fn run(
    common: &CommonArgs,
    config: &Config,
    file: &std::path::Path,
    stride: Option<usize>,
    format: ReportFormat,
) -> Result<()> {
    let text = read_text(Some(file))?;
    let session = load_session(common, config)?;
    let score = crate::generate::perplexity::score(&session, &text, stride)?;
    let mut out = std::io::stdout().lock();
    let written = match format {
        ReportFormat::Json => writeln!(
            out,
            "{}",
            serde_json::to_string(&score).expect("plain data")
        ),
        ReportFormat::Text => writeln!(
            out,
            "file: {}\nmodel: {}\n{}\n{}",
            file.display(),
            session.name,
            summary_text(&score),
            speed_text(&score)
        ),
    };
    written.map_err(stdout_error)
}

/// How fast the windows ran: scored tokens per second, and positions through the model per
/// second (overlapping windows run most tokens more than once), which is the prompt speed.
fn speed_text(score: &Score) -> String {
    format!(
        "speed: {:.0} tokens/s scored in {:.2} s ({:.0} positions/s through the model, {:.2} per token)",
        score.tokens_per_second,
        score.seconds,
        score.positions_per_second,
        score.positions_run as f64 / score.tokens_scored.max(1) as f64
    )
}

/// The figures of a scored text, one per line, as `perplexity` and `score` print them.
pub(super) fn summary_text(score: &Score) -> String {
    format!(
        "tokens: {} ({} scored, window {}, stride {})\nmean nll: {:.6}\nperplexity: {:.4}\nbits per byte: {:.4}",
        score.tokens,
        score.tokens_scored,
        score.window,
        score.stride,
        score.mean_nll,
        score.perplexity,
        score.bits_per_byte
    )
}
