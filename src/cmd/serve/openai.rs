//! The requests of the OpenAI API (and llama.cpp's extras), read with serde and checked field by
//! field: every error names the field. Unknown fields are ignored, as the OpenAI API and
//! llama-server do (clients send `user`, `suffix`, `tools`, ...).
//!
//! Defaults are the OpenAI API's, not the interface's: temperature 1, top_p 1, no penalties,
//! no top-k or min-p; `max_tokens` 16 for completions, up to the window for chat.

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use super::errors::{ApiError, ApiResult};
use crate::engine::chat::{Role, Turn};
use crate::generate::bias::{BiasToken, LogitBias};
use crate::generate::SamplingParams;
use crate::tokenizer::Tokenizer;

/// Most choices one request may ask for (prompts times `n`).
pub const MAX_CHOICES: usize = 128;
/// Most stop sequences.
pub const MAX_STOP: usize = 16;
/// OpenAI's default `max_tokens` for completions.
const COMPLETION_MAX_TOKENS: usize = 16;

#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    pub include_usage: Option<bool>,
}

/// Sampling fields shared by completions and chat.
#[derive(Debug, Default, Deserialize)]
pub struct SamplingFields {
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub n: Option<i64>,
    pub stop: Option<Value>,
    pub seed: Option<i64>,
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    pub logit_bias: Option<HashMap<String, f64>>,
    pub frequency_penalty: Option<f64>,
    pub presence_penalty: Option<f64>,
    // llama.cpp's extras.
    pub top_k: Option<i64>,
    pub min_p: Option<f64>,
    pub repeat_penalty: Option<f64>,
    pub repeat_last_n: Option<i64>,
    pub ignore_eos: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
pub struct CompletionRequest {
    pub model: Option<String>,
    pub prompt: Option<Value>,
    pub max_tokens: Option<i64>,
    pub logprobs: Option<i64>,
    pub echo: Option<bool>,
    /// Read from the same object (see [`parse_request`]).
    #[serde(skip)]
    pub sampling: SamplingFields,
}

#[derive(Debug, Default, Deserialize)]
pub struct ChatMessage {
    pub role: Option<String>,
    pub content: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ChatRequest {
    pub model: Option<String>,
    pub messages: Option<Vec<ChatMessage>>,
    pub max_tokens: Option<i64>,
    pub max_completion_tokens: Option<i64>,
    pub logprobs: Option<bool>,
    pub top_logprobs: Option<i64>,
    /// Read from the same object (see [`parse_request`]).
    #[serde(skip)]
    pub sampling: SamplingFields,
}

#[derive(Debug, Default, Deserialize)]
pub struct TokenizeRequest {
    pub content: Option<String>,
    pub with_pieces: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
pub struct DetokenizeRequest {
    pub tokens: Option<Vec<i64>>,
}

/// What a request asks of the worker, checked.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The `model` field, echoed back.
    pub model: Option<String>,
    pub params: SamplingParams,
    pub stop: Vec<String>,
    pub n: usize,
    pub stream: bool,
    pub include_usage: bool,
    /// How many alternatives to give per token, when log-probabilities are asked for.
    pub logprobs: Option<usize>,
    pub ignore_eos: bool,
}

/// A completion request: its prompts in tokens and the plan.
#[derive(Debug, Clone)]
pub struct CompletionPlan {
    pub prompts: Vec<Vec<u32>>,
    pub echo: bool,
    pub plan: Plan,
}

/// A chat request: the system prompt, the turns, and the plan.
#[derive(Debug, Clone)]
pub struct ChatPlan {
    pub system: String,
    pub turns: Vec<Turn>,
    pub plan: Plan,
}

/// Reads a JSON body into `T`: 400 for bad JSON (with serde's line and column) or for a field of
/// the wrong type (naming the field).
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    typed(&object(body)?)
}

/// A completion or chat request: its own fields and the sampling fields, from one object.
/// (Two reads rather than `#[serde(flatten)]`, which loses the path of a field at fault.)
pub fn parse_request<T: DeserializeOwned + HasSampling>(body: &[u8]) -> ApiResult<T> {
    let value = object(body)?;
    let mut request: T = typed(&value)?;
    *request.sampling() = typed(&value)?;
    Ok(request)
}

pub trait HasSampling {
    fn sampling(&mut self) -> &mut SamplingFields;
}

impl HasSampling for CompletionRequest {
    fn sampling(&mut self) -> &mut SamplingFields {
        &mut self.sampling
    }
}

impl HasSampling for ChatRequest {
    fn sampling(&mut self) -> &mut SamplingFields {
        &mut self.sampling
    }
}

fn object(body: &[u8]) -> ApiResult<Value> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_json(format!("the body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::bad_json("the body must be a JSON object"));
    }
    Ok(value)
}

fn typed<T: DeserializeOwned>(value: &Value) -> ApiResult<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        ApiError::field(&field, format!("`{field}`: {}", e.inner()))
    })
}

fn range(ok: bool, field: &str, value: impl std::fmt::Display, allowed: &str) -> ApiResult<()> {
    if ok {
        Ok(())
    } else {
        Err(ApiError::field(
            field,
            format!("`{field}` {value} is out of range ({allowed})"),
        ))
    }
}

fn float_in(value: Option<f64>, field: &str, lo: f64, hi: f64, default: f64) -> ApiResult<f32> {
    let x = value.unwrap_or(default);
    range(
        x.is_finite() && (lo..=hi).contains(&x),
        field,
        x,
        &format!("{lo} to {hi}"),
    )?;
    Ok(x as f32)
}

fn count_in(value: Option<i64>, field: &str, lo: i64, hi: i64, default: i64) -> ApiResult<usize> {
    let x = value.unwrap_or(default);
    range((lo..=hi).contains(&x), field, x, &format!("{lo} to {hi}"))?;
    Ok(x as usize)
}

impl SamplingFields {
    /// The sampling settings with OpenAI's defaults, and the rest of the plan.
    fn plan(
        &self,
        model: Option<String>,
        max_tokens: usize,
        logprobs: Option<usize>,
        vocab: usize,
    ) -> ApiResult<Plan> {
        let mut temperature = float_in(self.temperature, "temperature", 0.0, 2.0, 1.0)?;
        let mut top_p = float_in(self.top_p, "top_p", 0.0, 1.0, 1.0)?;
        if top_p == 0.0 {
            // Only the most likely token is left: greedy.
            temperature = 0.0;
            top_p = 1.0;
        }
        let repeat_penalty = self.repeat_penalty.unwrap_or(1.0);
        range(
            repeat_penalty.is_finite() && repeat_penalty > 0.0 && repeat_penalty <= 10.0,
            "repeat_penalty",
            repeat_penalty,
            "above 0, at most 10; 1 = off",
        )?;
        let logit_bias = match &self.logit_bias {
            None => Vec::new(),
            Some(map) => {
                let mut biases: Vec<LogitBias> = Vec::with_capacity(map.len());
                for (key, &bias) in map {
                    let field = format!("logit_bias.{key}");
                    let id = key
                        .trim()
                        .parse::<u32>()
                        .ok()
                        .filter(|&id| (id as usize) < vocab);
                    let Some(id) = id else {
                        return Err(ApiError::field(
                            &field,
                            format!("`{field}`: {key:?} is not a token id (0 to {})", vocab - 1),
                        ));
                    };
                    range(
                        bias.is_finite() && (-100.0..=100.0).contains(&bias),
                        &field,
                        bias,
                        "-100 to 100",
                    )?;
                    biases.push(LogitBias {
                        token: BiasToken::Id(id),
                        bias: bias as f32,
                    });
                }
                // A map has no order; keep the draw repeatable.
                biases.sort_by_key(|b| b.id());
                biases
            }
        };
        let params = SamplingParams {
            temperature,
            top_k: count_in(self.top_k, "top_k", 0, vocab as i64, 0)?,
            top_p,
            min_p: float_in(self.min_p, "min_p", 0.0, 1.0, 0.0)?,
            repeat_penalty: repeat_penalty as f32,
            repeat_last_n: count_in(self.repeat_last_n, "repeat_last_n", 0, 1 << 20, 64)?,
            max_tokens,
            seed: self.seed.map(|s| s as u64),
            logit_bias,
            frequency_penalty: float_in(
                self.frequency_penalty,
                "frequency_penalty",
                -2.0,
                2.0,
                0.0,
            )?,
            presence_penalty: float_in(self.presence_penalty, "presence_penalty", -2.0, 2.0, 0.0)?,
        };
        params
            .validate()
            .map_err(|e| ApiError::field("temperature", e))?;
        Ok(Plan {
            model,
            params,
            stop: self.stop_sequences()?,
            n: count_in(self.n, "n", 1, MAX_CHOICES as i64, 1)?,
            stream: self.stream.unwrap_or(false),
            include_usage: self
                .stream_options
                .as_ref()
                .and_then(|o| o.include_usage)
                .unwrap_or(false),
            logprobs,
            ignore_eos: self.ignore_eos.unwrap_or(false),
        })
    }

    fn stop_sequences(&self) -> ApiResult<Vec<String>> {
        let stops = match &self.stop {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_str().map(str::to_string).ok_or_else(|| {
                        ApiError::field(
                            &format!("stop[{i}]"),
                            format!("`stop[{i}]` is not a string"),
                        )
                    })
                })
                .collect::<ApiResult<_>>()?,
            Some(_) => {
                return Err(ApiError::field(
                    "stop",
                    "`stop` must be a string or an array of strings",
                ))
            }
        };
        range(
            stops.len() <= MAX_STOP,
            "stop",
            stops.len(),
            &format!("at most {MAX_STOP} sequences"),
        )?;
        if stops.iter().any(String::is_empty) {
            return Err(ApiError::field(
                "stop",
                "`stop` sequences must not be empty",
            ));
        }
        Ok(stops)
    }
}

impl CompletionRequest {
    pub fn check(self, tokenizer: &Tokenizer) -> ApiResult<CompletionPlan> {
        let vocab = tokenizer.vocab_size();
        let prompt = self
            .prompt
            .as_ref()
            .ok_or_else(|| ApiError::missing("prompt"))?;
        let prompts = prompts(prompt, tokenizer)?;
        let echo = self.echo.unwrap_or(false);
        let max_tokens = count_in(
            self.max_tokens,
            "max_tokens",
            if echo { 0 } else { 1 },
            i32::MAX as i64,
            COMPLETION_MAX_TOKENS as i64,
        )
        .map_err(|e| match echo {
            false if self.max_tokens == Some(0) => ApiError::field(
                "max_tokens",
                "`max_tokens` 0 is only allowed with `echo` (to score the prompt)",
            ),
            _ => e,
        })?;
        let logprobs = match self.logprobs {
            None => None,
            Some(k) => Some(count_in(Some(k), "logprobs", 0, 5, 0)?),
        };
        let plan = self
            .sampling
            .plan(self.model, max_tokens, logprobs, vocab)?;
        range(
            prompts.len() * plan.n <= MAX_CHOICES,
            "n",
            prompts.len() * plan.n,
            &format!("prompts times n at most {MAX_CHOICES}"),
        )?;
        Ok(CompletionPlan {
            prompts,
            echo,
            plan,
        })
    }
}

/// `prompt`: a string, an array of token ids, or an array of either (several prompts).
fn prompts(prompt: &Value, tokenizer: &Tokenizer) -> ApiResult<Vec<Vec<u32>>> {
    let encode = |field: &str, text: &str| {
        tokenizer
            .encode(text)
            .map_err(|e| ApiError::field(field, format!("`{field}`: {e}")))
    };
    let not_a_prompt = || {
        ApiError::field(
            "prompt",
            "`prompt` must be a string, an array of token ids, or an array of those",
        )
    };
    match prompt {
        Value::String(text) => Ok(vec![encode("prompt", text)?]),
        Value::Array(items) if items.is_empty() => {
            Err(ApiError::field("prompt", "`prompt` is empty"))
        }
        Value::Array(items) if items.iter().all(Value::is_number) => {
            Ok(vec![token_ids("prompt", items, tokenizer.vocab_size())?])
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let field = format!("prompt[{i}]");
                match item {
                    Value::String(text) => encode(&field, text),
                    Value::Array(ids) => token_ids(&field, ids, tokenizer.vocab_size()),
                    _ => Err(not_a_prompt()),
                }
            })
            .collect(),
        _ => Err(not_a_prompt()),
    }
}

fn token_ids(field: &str, items: &[Value], vocab: usize) -> ApiResult<Vec<u32>> {
    items
        .iter()
        .map(|v| {
            v.as_u64()
                .filter(|&id| (id as usize) < vocab)
                .map(|id| id as u32)
                .ok_or_else(|| {
                    ApiError::field(
                        field,
                        format!("`{field}`: {v} is not a token id (0 to {})", vocab - 1),
                    )
                })
        })
        .collect()
}

impl ChatRequest {
    pub fn check(self, vocab: usize, window: usize) -> ApiResult<ChatPlan> {
        let messages = self
            .messages
            .as_ref()
            .ok_or_else(|| ApiError::missing("messages"))?;
        if messages.is_empty() {
            return Err(ApiError::field("messages", "`messages` is empty"));
        }
        let mut system = Vec::new();
        let mut turns = Vec::new();
        for (i, message) in messages.iter().enumerate() {
            let text = message_text(i, message.content.as_ref())?;
            let role = message
                .role
                .as_deref()
                .ok_or_else(|| ApiError::missing(&format!("messages[{i}].role")))?;
            match role {
                "system" | "developer" => system.push(text),
                "user" => turns.push(Turn {
                    role: Role::User,
                    text,
                }),
                "assistant" => turns.push(Turn {
                    role: Role::Model,
                    text,
                }),
                other => {
                    let field = format!("messages[{i}].role");
                    return Err(ApiError::field(
                        &field,
                        format!("`{field}` {other:?} is not system, user or assistant"),
                    ));
                }
            }
        }
        if turns.is_empty() {
            return Err(ApiError::field(
                "messages",
                "`messages` has no user or assistant message",
            ));
        }
        let limit = self.max_completion_tokens.or(self.max_tokens);
        let field = if self.max_completion_tokens.is_some() {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        let max_tokens = count_in(limit, field, 1, i32::MAX as i64, window as i64)?;
        let logprobs = match (self.logprobs.unwrap_or(false), self.top_logprobs) {
            (true, k) => Some(count_in(k, "top_logprobs", 0, 20, 0)?),
            (false, Some(_)) => {
                return Err(ApiError::field(
                    "top_logprobs",
                    "`top_logprobs` needs `logprobs: true`",
                ))
            }
            (false, None) => None,
        };
        let plan = self
            .sampling
            .plan(self.model, max_tokens, logprobs, vocab)?;
        Ok(ChatPlan {
            system: system.join("\n"),
            turns,
            plan,
        })
    }
}

/// A message's `content`: a string, or an array of parts whose `text` parts are joined.
fn message_text(i: usize, content: Option<&Value>) -> ApiResult<String> {
    let field = format!("messages[{i}].content");
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(
                |(j, part)| match (part.get("type").and_then(Value::as_str), part.get("text")) {
                    (Some("text"), Some(Value::String(t))) => Ok(t.as_str()),
                    _ => Err(ApiError::field(
                        &format!("{field}[{j}]"),
                        format!("`{field}[{j}]` is not a text part (only text is supported)"),
                    )),
                },
            )
            .collect::<ApiResult<Vec<_>>>()
            .map(|texts| texts.concat()),
        Some(_) => Err(ApiError::field(
            &field,
            format!("`{field}` must be a string or an array of text parts"),
        )),
    }
}

impl DetokenizeRequest {
    pub fn check(self, vocab: usize) -> ApiResult<Vec<u32>> {
        let tokens = self.tokens.ok_or_else(|| ApiError::missing("tokens"))?;
        tokens
            .iter()
            .map(|&id| {
                u32::try_from(id)
                    .ok()
                    .filter(|&id| (id as usize) < vocab)
                    .ok_or_else(|| {
                        ApiError::field(
                            "tokens",
                            format!("`tokens`: {id} is not a token id (0 to {})", vocab - 1),
                        )
                    })
            })
            .collect()
    }
}
