//! Answers in the OpenAI shapes, built from the worker's events: the chunks of a stream as
//! they come, and the whole answer at the end (the same fields, gathered).
//!
//! `text_offset` counts characters (what a Python client indexes), from the start of the
//! choice's text (the echoed prompt included).

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::errors::ApiError;
use super::worker::Event;
use crate::generate::perplexity::TokenScore;
use crate::generate::session::{FinishReason, Stats, Token};
use crate::generate::Utf8Stream;
use crate::tokenizer::Tokenizer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Completion { echo: bool },
    Chat,
}

/// OpenAI's `finish_reason`: `length` at `max_tokens`, else `stop`.
pub fn finish_reason(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::MaxTokens => "length",
        FinishReason::Eos | FinishReason::Stop => "stop",
    }
}

/// One position's log-probability information, in both APIs' shapes.
struct Entry {
    id: u32,
    logprob: Option<f32>,
    /// Alternatives as (id, logprob), best first; `None` for the first prompt token.
    top: Option<Vec<(u32, f32)>>,
    offset: usize,
}

#[derive(Default)]
struct Choice {
    started: bool,
    text: String,
    chars: usize,
    entries: Vec<Entry>,
    finish: Option<&'static str>,
    /// Chat: leading whitespace of the reply is dropped (the transcript format's `GPT-2:` is
    /// followed by a space).
    seen_text: bool,
}

pub struct Reply {
    kind: Kind,
    id: String,
    created: u64,
    model: String,
    tokenizer: Arc<Tokenizer>,
    prompts: Vec<Vec<u32>>,
    n: usize,
    logprobs: Option<usize>,
    include_usage: bool,
    choices: Vec<Choice>,
    prompt_tokens: usize,
    completion_tokens: usize,
    finished: usize,
    /// llama-server's `timings`, summed over the choices: `cache_n` prompt tokens came from the
    /// cache, `prompt_n` were run.
    timings: Timings,
}

#[derive(Debug, Default, Clone, serde::Serialize)]
struct Timings {
    cache_n: usize,
    prompt_n: usize,
    prompt_ms: f64,
    predicted_n: usize,
    predicted_ms: f64,
}

impl Reply {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        kind: Kind,
        model: String,
        tokenizer: Arc<Tokenizer>,
        prompts: Vec<Vec<u32>>,
        n: usize,
        logprobs: Option<usize>,
        include_usage: bool,
    ) -> Self {
        let prefix = match kind {
            Kind::Completion { .. } => "cmpl",
            Kind::Chat => "chatcmpl",
        };
        let number = ANSWERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self {
            kind,
            id: format!("{prefix}-{created:x}{number:06}"),
            created,
            model,
            tokenizer,
            prompt_tokens: prompts.iter().map(Vec::len).sum(),
            choices: (0..prompts.len() * n).map(|_| Choice::default()).collect(),
            prompts,
            n,
            logprobs,
            include_usage,
            completion_tokens: 0,
            finished: 0,
            timings: Timings::default(),
        }
    }

    /// True once every choice is done.
    pub fn is_complete(&self) -> bool {
        self.finished == self.choices.len()
    }

    /// Takes in one event; returns the stream chunks it makes (empty when it makes none).
    pub fn on_event(&mut self, event: Event) -> Result<Vec<Value>, ApiError> {
        let mut chunks = Vec::new();
        match event {
            Event::Failed(message) => {
                return Err(if message.contains("shutting down") {
                    ApiError::unavailable(message)
                } else {
                    ApiError::internal(message)
                })
            }
            Event::Prompt { choice, scores } => {
                chunks.extend(self.start(choice, Some(&scores)));
            }
            Event::Token { choice, token } => {
                chunks.extend(self.start(choice, None));
                chunks.extend(self.token(choice, &token));
            }
            Event::Done {
                choice,
                reason,
                text,
                stats,
            } => {
                chunks.extend(self.start(choice, None));
                self.completion_tokens += stats.generated_tokens;
                self.add_timings(&stats);
                self.finished += 1;
                let text = self.add_text(choice, &text);
                let reason = finish_reason(reason);
                self.choices[choice].finish = Some(reason);
                let mut chunk = self.chunk(choice, &text, None, Some(reason));
                if self.is_complete() {
                    chunk["usage"] = self.usage();
                    chunk["timings"] = json!(self.timings);
                }
                chunks.push(chunk);
                if self.is_complete() && self.include_usage {
                    let mut last = self.envelope(Vec::new());
                    last["usage"] = self.usage();
                    chunks.push(last);
                }
            }
        }
        Ok(chunks)
    }

    /// The first event of a choice: a chat stream's role chunk, or the echoed prompt.
    fn start(&mut self, choice: usize, scores: Option<&[Option<TokenScore>]>) -> Option<Value> {
        if self.choices[choice].started {
            return None;
        }
        self.choices[choice].started = true;
        match self.kind {
            Kind::Chat => Some(self.envelope(vec![json!({
                "index": choice,
                "delta": {"role": "assistant", "content": ""},
                "logprobs": null,
                "finish_reason": null,
            })])),
            Kind::Completion { echo: false } => None,
            Kind::Completion { echo: true } => {
                let prompt = self.prompts[choice / self.n].clone();
                let mut utf8 = Utf8Stream::default();
                let mut text = String::new();
                let mut entries = Vec::new();
                let base = self.choices[choice].chars;
                for (i, &id) in prompt.iter().enumerate() {
                    let offset = base + text.chars().count();
                    text += &utf8.push(self.tokenizer.token_bytes(id));
                    let score = scores.and_then(|s| s.get(i)).and_then(Option::as_ref);
                    entries.push(Entry {
                        id,
                        logprob: score.map(|s| s.logprob),
                        top: score.map(|s| s.top.clone()),
                        offset,
                    });
                }
                text += &utf8.finish();
                let c = &mut self.choices[choice];
                c.text += &text;
                c.chars += text.chars().count();
                let first = c.entries.len();
                if self.logprobs.is_some() {
                    c.entries.extend(entries);
                }
                let logprobs = self
                    .logprobs
                    .map(|_| first..self.choices[choice].entries.len());
                Some(self.chunk(choice, &text, logprobs, None))
            }
        }
    }

    fn token(&mut self, choice: usize, token: &Token) -> Option<Value> {
        let offset = self.choices[choice].chars;
        let text = self.add_text(choice, &token.text);
        let c = &mut self.choices[choice];
        let logprobs = self.logprobs.map(|k| {
            c.entries.push(Entry {
                id: token.id,
                logprob: Some(token.logprob),
                top: Some(
                    token
                        .top
                        .iter()
                        .take(k)
                        .map(|&(id, p)| (id, p.ln()))
                        .collect(),
                ),
                offset,
            });
            c.entries.len() - 1..c.entries.len()
        });
        if text.is_empty() && logprobs.is_none() {
            return None;
        }
        Some(self.chunk(choice, &text, logprobs, None))
    }

    /// Adds released text to a choice (a chat reply without its leading whitespace); returns
    /// what was added.
    fn add_text(&mut self, choice: usize, text: &str) -> String {
        let c = &mut self.choices[choice];
        let text = if self.kind == Kind::Chat && !c.seen_text {
            let trimmed = text.trim_start();
            c.seen_text = !trimmed.is_empty();
            trimmed
        } else {
            text
        };
        c.text += text;
        c.chars += text.chars().count();
        text.to_string()
    }

    fn add_timings(&mut self, stats: &Stats) {
        let t = &mut self.timings;
        let prompt = stats.prompt_tokens - stats.prompt_truncated;
        t.cache_n += prompt.saturating_sub(stats.prefill_tokens);
        t.prompt_n += stats.prefill_tokens;
        t.prompt_ms += stats.prefill_time.as_secs_f64() * 1e3;
        t.predicted_n += stats.generated_tokens;
        t.predicted_ms += stats.decode_time.as_secs_f64() * 1e3;
    }

    fn usage(&self) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        })
    }

    fn envelope(&self, choices: Vec<Value>) -> Value {
        let object = match self.kind {
            Kind::Chat => "chat.completion.chunk",
            Kind::Completion { .. } => "text_completion",
        };
        json!({
            "id": self.id,
            "object": object,
            "created": self.created,
            "model": self.model,
            "choices": choices,
        })
    }

    /// One stream chunk for `choice`: new text, the log-probabilities of `entries`, the end.
    fn chunk(
        &self,
        choice: usize,
        text: &str,
        entries: Option<std::ops::Range<usize>>,
        finish: Option<&str>,
    ) -> Value {
        let logprobs = entries.map(|r| self.logprobs_json(choice, r));
        let body = match self.kind {
            Kind::Completion { .. } => json!({
                "index": choice,
                "text": text,
                "logprobs": logprobs,
                "finish_reason": finish,
            }),
            Kind::Chat => {
                let delta = if text.is_empty() && finish.is_some() {
                    json!({})
                } else {
                    json!({"content": text})
                };
                json!({
                    "index": choice,
                    "delta": delta,
                    "logprobs": logprobs,
                    "finish_reason": finish,
                })
            }
        };
        self.envelope(vec![body])
    }

    /// The log-probabilities of a choice's entries `range`, in the API's shape.
    fn logprobs_json(&self, choice: usize, range: std::ops::Range<usize>) -> Value {
        let entries = &self.choices[choice].entries[range];
        let tok = |id: u32| self.tokenizer.token_text(id);
        match self.kind {
            Kind::Completion { .. } => {
                let tops: Vec<Value> = entries
                    .iter()
                    .map(|e| match &e.top {
                        None => Value::Null,
                        Some(top) => Value::Object(
                            top.iter()
                                .map(|&(id, lp)| (tok(id), json!(lp)))
                                .collect::<Map<_, _>>(),
                        ),
                    })
                    .collect();
                json!({
                    "tokens": entries.iter().map(|e| tok(e.id)).collect::<Vec<_>>(),
                    "token_logprobs": entries.iter().map(|e| e.logprob).collect::<Vec<_>>(),
                    "top_logprobs": tops,
                    "text_offset": entries.iter().map(|e| e.offset).collect::<Vec<_>>(),
                })
            }
            Kind::Chat => {
                let item = |id: u32, lp: f32| {
                    json!({
                        "token": tok(id),
                        "logprob": lp,
                        "bytes": self.tokenizer.token_bytes(id),
                    })
                };
                let content: Vec<Value> = entries
                    .iter()
                    .map(|e| {
                        let mut v = item(e.id, e.logprob.unwrap_or(0.0));
                        v["top_logprobs"] = e
                            .top
                            .iter()
                            .flatten()
                            .map(|&(id, lp)| item(id, lp))
                            .collect();
                        v
                    })
                    .collect();
                json!({ "content": content })
            }
        }
    }

    /// The whole answer, once every choice is done.
    pub fn whole(&self) -> Value {
        let choices: Vec<Value> = self
            .choices
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let logprobs = self
                    .logprobs
                    .map(|_| self.logprobs_json(i, 0..c.entries.len()));
                match self.kind {
                    Kind::Completion { .. } => json!({
                        "index": i,
                        "text": c.text,
                        "logprobs": logprobs,
                        "finish_reason": c.finish,
                    }),
                    Kind::Chat => json!({
                        "index": i,
                        "message": {"role": "assistant", "content": c.text},
                        "logprobs": logprobs,
                        "finish_reason": c.finish,
                    }),
                }
            })
            .collect();
        let object = match self.kind {
            Kind::Completion { .. } => "text_completion",
            Kind::Chat => "chat.completion",
        };
        json!({
            "id": self.id,
            "object": object,
            "created": self.created,
            "model": self.model,
            "choices": choices,
            "usage": self.usage(),
            "timings": json!(self.timings),
        })
    }
}

/// Numbers the answers' ids.
static ANSWERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
