//! `gpt2-tui score [FILE|-]`: every token of a text with the model's view of it.
//!
//! jsonl: one line per token (log-probability, rank, entropy, the best alternatives, byte
//! offsets that rebuild the input), then a summary line equal to `perplexity`'s figures.
//! text: the text itself, each token coloured by its probability on a terminal (the theme's
//! probability scale, as F3 in the interface), then the summary; plain when piped.

use std::io::{IsTerminal, Write};
use std::path::Path;

use ratatui::backend::IntoCrossterm;
use ratatui::crossterm::queue;
use ratatui::crossterm::style::{Print, ResetColor, SetForegroundColor};
use serde_json::json;

use super::perplexity::summary_text;
use super::{read_text, stdout_error};
use crate::cli::{CommonArgs, OutputFormat};
use crate::config::Config;
use crate::error::Result;
use crate::generate::perplexity::{score_tokens, Score, TokenScore};
use crate::generate::Utf8Stream;
use crate::load::load_session;
use crate::tokenizer::Tokenizer;
use crate::tui::theme::{load_themes, Theme};

pub(super) struct ScoreRequest<'a> {
    pub file: Option<&'a Path>,
    pub stride: Option<usize>,
    pub top: usize,
    pub format: OutputFormat,
}

pub(super) fn run(common: &CommonArgs, config: &Config, request: ScoreRequest) -> Result<()> {
    let text = read_text(request.file)?;
    let session = load_session(common, config)?;
    let tokenizer = session.shared_tokenizer();
    let stdout = std::io::stdout();
    let colour = request.format == OutputFormat::Text && stdout.is_terminal();
    let theme = colour.then(|| configured_theme(config));
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut spans = Spans {
        tokenizer: &tokenizer,
        at: 0,
    };
    // Text mode prints whole characters: a character split between tokens comes out with the
    // token that completes it.
    let mut utf8 = Utf8Stream::default();
    let summary = score_tokens(
        &session,
        &text,
        request.stride,
        request.top,
        |i, id, score| {
            let (start, end) = spans.next(id);
            match request.format {
                OutputFormat::Jsonl => {
                    let line = token_line(&tokenizer, i, id, start, end, score.as_ref());
                    writeln!(out, "{line}").map_err(stdout_error)
                }
                OutputFormat::Text => {
                    let piece = utf8.push(&text.as_bytes()[start..end]);
                    let written = match (&theme, &score) {
                        (Some(theme), Some(s)) => {
                            let colour = theme.probability_color(s.logprob.exp());
                            queue!(
                                out,
                                SetForegroundColor(colour.into_crossterm()),
                                Print(piece),
                                ResetColor
                            )
                        }
                        _ => write!(out, "{piece}"),
                    };
                    written.map_err(stdout_error)
                }
            }
        },
    )?;
    match request.format {
        OutputFormat::Jsonl => writeln!(out, "{}", summary_line(&summary)),
        OutputFormat::Text => writeln!(out, "{}\n\n{}", utf8.finish(), summary_text(&summary)),
    }
    .and_then(|_| out.flush())
    .map_err(stdout_error)
}

/// Byte spans of consecutive tokens: each token's own bytes laid end to end, so the spans
/// rebuild the input exactly, also where a character is split between tokens (the tokenizer's
/// own offsets give both halves the whole character).
struct Spans<'a> {
    tokenizer: &'a Tokenizer,
    at: usize,
}

impl Spans<'_> {
    fn next(&mut self, id: u32) -> (usize, usize) {
        let start = self.at;
        self.at += self.tokenizer.token_bytes(id).len();
        (start, self.at)
    }
}

fn token_line(
    tokenizer: &Tokenizer,
    i: usize,
    id: u32,
    start: usize,
    end: usize,
    score: Option<&TokenScore>,
) -> serde_json::Value {
    let text = tokenizer.token_text(id);
    match score {
        None => json!({
            "i": i, "id": id, "text": text, "start": start, "end": end,
            "logprob": null, "rank": null, "entropy": null, "top": [],
        }),
        Some(s) => json!({
            "i": i, "id": id, "text": text, "start": start, "end": end,
            "logprob": s.logprob, "rank": s.rank, "entropy": s.entropy,
            "top": s.top.iter().map(|&(id, logprob)| json!({
                "id": id, "text": tokenizer.token_text(id), "logprob": logprob,
            })).collect::<Vec<_>>(),
        }),
    }
}

fn summary_line(s: &Score) -> serde_json::Value {
    json!({
        "done": true,
        "tokens": s.tokens,
        "scored": s.tokens_scored,
        "mean_nll": s.mean_nll,
        "perplexity": s.perplexity,
        "bits_per_byte": s.bits_per_byte,
        "window": s.window,
        "stride": s.stride,
    })
}

/// The configured theme (the built-in default if it is unknown), for its probability colours.
fn configured_theme(config: &Config) -> Theme {
    let (mut themes, _) = load_themes(Config::default_dir().map(|d| d.join("themes")).as_deref());
    themes
        .remove(&config.ui.theme)
        .unwrap_or_else(Theme::default_theme)
}
