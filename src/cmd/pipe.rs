//! Pipe mode: the prompt in, only the generated text out, diagnostics on stderr.

use std::io::{Read, Write};

use serde_json::json;

use super::stdout_error;
use crate::cli::OutputFormat;
use crate::error::{Error, Result};
use crate::generate::session::{GenerateOptions, Session, Step};
use crate::generate::SamplingParams;
use crate::runtime::device::device_name;

/// Reads the whole of stdin as the prompt, removing one trailing newline.
pub fn read_prompt(mut input: impl Read) -> Result<String> {
    let mut bytes = Vec::new();
    input
        .read_to_end(&mut bytes)
        .map_err(|e| Error::Other(format!("reading stdin: {e}")))?;
    let mut text = String::from_utf8(bytes).map_err(|e| {
        Error::Other(format!(
            "stdin is not valid UTF-8 (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    if text.is_empty() {
        return Err(Error::Usage(
            "the prompt is empty (stdin had no text)".into(),
        ));
    }
    Ok(text)
}

pub struct PipeRequest {
    pub prompt: String,
    pub params: SamplingParams,
    pub options: GenerateOptions,
    pub format: OutputFormat,
    pub stats: bool,
}

/// Streams the generation to `out`, flushing every piece as it comes.
pub fn run(
    session: &mut Session,
    request: &PipeRequest,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<()> {
    let prompt = session.tokenizer().encode(&request.prompt)?;
    let window = session.window();
    let device = device_name(session.device());
    let dtype = session.weight_format();
    let mut generation = session.generate(&prompt, request.options.clone(), request.params.seed)?;
    let truncated = generation.stats().prompt_truncated;
    if truncated > 0 {
        let _ = writeln!(
            err,
            "gpt2-tui: note: the prompt has {} tokens and the window holds {window}: keeping the last {window}",
            prompt.len()
        );
    }
    let reason = loop {
        match generation.step(&request.params)? {
            Step::Token(token) => {
                match request.format {
                    OutputFormat::Text => out.write_all(token.text.as_bytes()),
                    OutputFormat::Jsonl => {
                        let mut line =
                            json!({"id": token.id, "text": token.text, "logprob": token.logprob});
                        if request.options.top_n > 0 {
                            // Log-probabilities of the best tokens (raw softmax), best first.
                            let tokenizer = generation.tokenizer();
                            line["top"] = token
                                .top
                                .iter()
                                .map(|&(id, p)| {
                                    json!({"id": id, "text": tokenizer.token_text(id), "logprob": p.ln()})
                                })
                                .collect();
                        }
                        writeln!(out, "{line}")
                    }
                }
                .and_then(|_| out.flush())
                .map_err(stdout_error)?;
            }
            Step::Done { reason, text } => {
                match request.format {
                    OutputFormat::Text => writeln!(out, "{text}"),
                    OutputFormat::Jsonl => writeln!(
                        out,
                        "{}",
                        json!({
                            "done": true,
                            "reason": reason.as_str(),
                            "text": text,
                            "generated_tokens": generation.stats().generated_tokens,
                        })
                    ),
                }
                .and_then(|_| out.flush())
                .map_err(stdout_error)?;
                break reason;
            }
        }
    };
    let stats = generation.stats().clone();
    if stats.context_shifts > 0 {
        let _ = writeln!(
            err,
            "gpt2-tui: note: the window of {window} tokens filled {} time(s); the oldest tokens were dropped",
            stats.context_shifts
        );
    }
    if request.stats {
        let line = json!({
            "prompt_tokens": stats.prompt_tokens,
            "prefill_tokens": stats.prefill_tokens,
            "generated_tokens": stats.generated_tokens,
            "prefill_tokens_per_s": round2(stats.prefill_tokens_per_s()),
            "decode_tokens_per_s": round2(stats.decode_tokens_per_s()),
            "prefill_ms": round2(stats.prefill_time.as_secs_f64() * 1e3),
            "decode_ms": round2(stats.decode_time.as_secs_f64() * 1e3),
            "context_shifts": stats.context_shifts,
            "prompt_truncated": stats.prompt_truncated,
            "finish_reason": reason.as_str(),
            "model": session.name,
            "parameters": session.parameter_count(),
            "device": device,
            "dtype": dtype,
        });
        let _ = writeln!(err, "{line}");
    }
    Ok(())
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
