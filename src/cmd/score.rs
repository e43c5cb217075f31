//! `gpt2-tui score [FILE|-]`: every token of a text with the model's view of it.
//!
//! jsonl: one line per token (log-probability, rank, entropy, the best alternatives, byte
//! offsets that rebuild the input), then a summary line equal to `perplexity`'s figures.
//! text: the text itself, each token coloured by its probability on a terminal (the theme's
//! probability scale, as F3 in the interface), then the summary; plain when piped.

use std::io::{IsTerminal, Read, Write};
use std::path::Path;

use ratatui::style::Color;
use serde_json::json;

use super::stdout_error;
use crate::cli::{CommonArgs, OutputFormat};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::generate::perplexity::{score_tokens, Score, TokenScore};
use crate::generate::Utf8Stream;
use crate::load::load_session;
use crate::tokenizer::Tokenizer;

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
    let scale = colour.then(|| probability_scale(config));
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut spans = Spans::new(&tokenizer);
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
                    let written = match (&scale, &score) {
                        (Some(scale), Some(s)) => {
                            let band = probability_band(s.logprob.exp());
                            write!(out, "{}{piece}\x1b[0m", sgr_foreground(scale[band]))
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
        OutputFormat::Text => writeln!(
            out,
            "{}\n\ntokens: {} ({} scored, window {}, stride {})\nmean nll: {:.6}\nperplexity: {:.4}\nbits per byte: {:.4}",
            utf8.finish(),
            summary.tokens,
            summary.tokens_scored,
            summary.window,
            summary.stride,
            summary.mean_nll,
            summary.perplexity,
            summary.bits_per_byte
        ),
    }
    .and_then(|_| out.flush())
    .map_err(stdout_error)
}

/// The file's text, or all of stdin for `-` or no file.
fn read_text(file: Option<&Path>) -> Result<String> {
    let (bytes, origin) = match file {
        Some(path) if path != Path::new("-") => (
            std::fs::read(path).map_err(|e| Error::io(path, e))?,
            path.display().to_string(),
        ),
        _ => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .map_err(|e| Error::Other(format!("reading stdin: {e}")))?;
            (bytes, "stdin".to_string())
        }
    };
    String::from_utf8(bytes).map_err(|e| {
        Error::Other(format!(
            "{origin}: not valid UTF-8 (byte {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// Byte spans of consecutive tokens: each token's own bytes laid end to end, so the spans
/// rebuild the input exactly, also where a character is split between tokens (the tokenizer's
/// own offsets give both halves the whole character).
struct Spans {
    at: usize,
    /// The token lengths in bytes, by id; `<|endoftext|>` written in the text is its spelling.
    lengths: Vec<usize>,
}

impl Spans {
    fn new(tokenizer: &Tokenizer) -> Self {
        let lengths = (0..tokenizer.vocab_size() as u32)
            .map(|id| tokenizer.token_bytes(id).len())
            .collect();
        Self { at: 0, lengths }
    }

    fn next(&mut self, id: u32) -> (usize, usize) {
        let start = self.at;
        self.at += self.lengths.get(id as usize).copied().unwrap_or(0);
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

/// The configured theme's probability colours (the built-in default if it is unknown).
fn probability_scale(config: &Config) -> [Color; 5] {
    let (themes, _) =
        crate::tui::theme::load_themes(Config::default_dir().map(|d| d.join("themes")).as_deref());
    themes
        .get(&config.ui.theme)
        .map(|t| t.probability)
        .unwrap_or_else(|| crate::tui::theme::Theme::default_theme().probability)
}

fn probability_band(p: f32) -> usize {
    crate::tui::theme::PROBABILITY_BANDS
        .iter()
        .take_while(|&&edge| p >= edge)
        .count()
}

/// The escape sequence that sets `color` as the foreground.
fn sgr_foreground(color: Color) -> String {
    let basic = |n: u8| format!("\x1b[{n}m");
    match color {
        Color::Rgb(r, g, b) => format!("\x1b[38;2;{r};{g};{b}m"),
        Color::Indexed(n) => format!("\x1b[38;5;{n}m"),
        Color::Black => basic(30),
        Color::Red => basic(31),
        Color::Green => basic(32),
        Color::Yellow => basic(33),
        Color::Blue => basic(34),
        Color::Magenta => basic(35),
        Color::Cyan => basic(36),
        Color::Gray => basic(37),
        Color::DarkGray => basic(90),
        Color::LightRed => basic(91),
        Color::LightGreen => basic(92),
        Color::LightYellow => basic(93),
        Color::LightBlue => basic(94),
        Color::LightMagenta => basic(95),
        Color::LightCyan => basic(96),
        Color::White => basic(97),
        Color::Reset => basic(39),
    }
}
