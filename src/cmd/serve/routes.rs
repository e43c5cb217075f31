//! The HTTP side: the routes, the API key check, and the handlers that turn a request into a
//! job for the worker and its events into an answer (whole, or streamed as server-sent events).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::errors::{ApiError, ApiResult, BODY_LIMIT};
use super::openai::{
    parse_body, parse_request, ChatRequest, CompletionRequest, DetokenizeRequest, Plan,
    TokenizeRequest,
};
use super::reply::{Kind, Reply};
use super::worker::{Event, Job, WorkerHandle};
use crate::engine::chat::{chat_prompt, ChatFormat, ReplyTokens};
use crate::generate::session::GenerateOptions;
use crate::tokenizer::Tokenizer;

/// What every handler shares.
pub struct AppState {
    pub worker: WorkerHandle,
    pub tokenizer: Arc<Tokenizer>,
    pub model_name: String,
    pub window: usize,
    pub eos: u32,
    pub parameters: usize,
    pub chat_format: ChatFormat,
    pub api_key: Option<String>,
}

type Shared = Arc<AppState>;

/// Every route. The OpenAI ones also answer without the `/v1` prefix, as llama-server's do.
pub fn router(state: Shared) -> Router {
    let api = Router::new()
        .route("/v1/models", get(models))
        .route("/models", get(models))
        .route("/v1/completions", post(completions))
        .route("/completions", post(completions))
        .route("/v1/chat/completions", post(chat))
        .route("/chat/completions", post(chat))
        .route("/tokenize", post(tokenize))
        .route("/detokenize", post(detokenize))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_key));
    Router::new()
        .route("/health", get(health))
        .merge(api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(uri.path())
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::method_not_allowed(method.as_str(), uri.path())
}

/// With `--api-key`: `Authorization: Bearer KEY` on every route but `/health`.
async fn require_key(State(state): State<Shared>, request: Request, next: Next) -> Response {
    if let Some(key) = &state.api_key {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match given {
            None => {
                return ApiError::unauthorized(
                    "an API key is required: send `Authorization: Bearer KEY`",
                )
                .into_response()
            }
            Some(given) if !same(given.as_bytes(), key.as_bytes()) => {
                return ApiError::unauthorized("the API key is wrong").into_response()
            }
            Some(_) => {}
        }
    }
    next.run(request).await
}

/// Compares without stopping at the first difference (the time says nothing of the key).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The body, or 413 when it is over the limit (400 for a body that could not be read).
fn body(body: Result<Bytes, BytesRejection>) -> ApiResult<Bytes> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large()
        } else {
            ApiError::bad_json(format!("the body could not be read: {rejection}"))
        }
    })
}

async fn health(State(state): State<Shared>) -> Json<Value> {
    let status = &state.worker.status;
    Json(json!({
        "status": "ok",
        "model": state.model_name,
        "pending": status.pending.load(Ordering::SeqCst),
        "busy": status.busy.load(Ordering::SeqCst),
        "completed": status.completed.load(Ordering::SeqCst),
    }))
}

async fn models(State(state): State<Shared>) -> Json<Value> {
    Json(json!({
        "object": "list",
        "data": [{
            "id": state.model_name,
            "object": "model",
            "created": 0,
            "owned_by": "gpt2-tui",
            "context_length": state.window,
            "meta": {
                "n_ctx_train": state.window,
                "n_vocab": state.tokenizer.vocab_size(),
                "n_params": state.parameters,
                "chat_format": state.chat_format.name(),
            },
        }],
    }))
}

async fn tokenize(
    State(state): State<Shared>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let request: TokenizeRequest = parse_body(&body(raw)?)?;
    let content = request
        .content
        .ok_or_else(|| ApiError::missing("content"))?;
    let ids = state
        .tokenizer
        .encode(&content)
        .map_err(|e| ApiError::field("content", format!("`content`: {e}")))?;
    let tokens: Vec<Value> = if request.with_pieces.unwrap_or(false) {
        ids.iter()
            .map(|&id| json!({"id": id, "piece": state.tokenizer.token_text(id)}))
            .collect()
    } else {
        ids.iter().map(|&id| json!(id)).collect()
    };
    Ok(Json(json!({ "tokens": tokens })))
}

async fn detokenize(
    State(state): State<Shared>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let request: DetokenizeRequest = parse_body(&body(raw)?)?;
    let ids = request.check(state.tokenizer.vocab_size())?;
    Ok(Json(json!({ "content": state.tokenizer.decode(&ids) })))
}

async fn completions(
    State(state): State<Shared>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let request: CompletionRequest = parse_request(&body(raw)?)?;
    let checked = request.check(&state.tokenizer)?;
    let kind = Kind::Completion { echo: checked.echo };
    let prompt_logprobs = if checked.echo {
        checked.plan.logprobs
    } else {
        None
    };
    answer(
        &state,
        kind,
        checked.prompts,
        checked.plan,
        Vec::new(),
        prompt_logprobs,
    )
    .await
}

async fn chat(
    State(state): State<Shared>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let request: ChatRequest = parse_request(&body(raw)?)?;
    let checked = request.check(state.tokenizer.vocab_size(), state.window)?;
    // Laid out as the interface lays out a chat, room kept for the reply as it keeps it.
    let reserve = checked.plan.params.max_tokens.min(state.window / 2);
    let laid_out = chat_prompt(
        &state.tokenizer,
        state.eos,
        state.chat_format,
        &checked.system,
        &checked.turns,
        &ReplyTokens::default(),
        state.window,
        reserve,
    )
    .map_err(|e| ApiError::field("messages", format!("`messages`: {e}")))?;
    let stop = state.chat_format.stop_sequences();
    answer(
        &state,
        Kind::Chat,
        vec![laid_out.tokens],
        checked.plan,
        stop,
        None,
    )
    .await
}

/// Sets the job's cancel flag when the answer is dropped (the client went away, or the answer
/// is complete).
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Queues the job and answers with its events: gathered into one body, or streamed.
async fn answer(
    state: &AppState,
    kind: Kind,
    prompts: Vec<Vec<u32>>,
    plan: Plan,
    mut stop: Vec<String>,
    prompt_logprobs: Option<usize>,
) -> ApiResult<Response> {
    stop.extend(plan.stop.iter().cloned());
    let (events, mut receiver) = mpsc::unbounded_channel();
    let cancel = Arc::new(AtomicBool::new(false));
    let reply = Reply::new(
        kind,
        plan.model
            .clone()
            .unwrap_or_else(|| state.model_name.clone()),
        state.tokenizer.clone(),
        prompts.clone(),
        plan.n,
        plan.logprobs,
        plan.include_usage,
    );
    let job = Job {
        prompts,
        n: plan.n,
        options: GenerateOptions {
            stop,
            ignore_eos: plan.ignore_eos,
            top_n: plan.logprobs.unwrap_or(0),
            trace: 0,
            score_prompt: false,
        },
        params: plan.params,
        prompt_logprobs,
        events,
        cancel: cancel.clone(),
    };
    let guard = CancelOnDrop(cancel);
    if !state.worker.submit(job) {
        return Err(ApiError::unavailable("the server is shutting down"));
    }
    if plan.stream {
        let stream = futures_util::stream::unfold(
            Streaming {
                receiver,
                reply,
                pending: VecDeque::new(),
                ended: false,
                _guard: guard,
            },
            next_chunk,
        );
        return Ok(Sse::new(stream).into_response());
    }
    let mut reply = reply;
    while !reply.is_complete() {
        match receiver.recv().await {
            Some(event) => {
                reply.on_event(event)?;
            }
            None => return Err(ApiError::internal("the generation ended early")),
        }
    }
    drop(guard);
    Ok(Json(reply.whole()).into_response())
}

struct Streaming {
    receiver: mpsc::UnboundedReceiver<Event>,
    reply: Reply,
    pending: VecDeque<SseEvent>,
    ended: bool,
    _guard: CancelOnDrop,
}

/// The next server-sent event of a stream: its chunks, then `data: [DONE]`; an error ends it
/// with the error object.
async fn next_chunk(mut s: Streaming) -> Option<(Result<SseEvent, Infallible>, Streaming)> {
    loop {
        if let Some(event) = s.pending.pop_front() {
            return Some((Ok(event), s));
        }
        if s.ended {
            return None;
        }
        let data = |v: Value| SseEvent::default().data(v.to_string());
        match s.receiver.recv().await {
            Some(event) => match s.reply.on_event(event) {
                Ok(chunks) => {
                    s.pending.extend(chunks.into_iter().map(data));
                    if s.reply.is_complete() {
                        s.pending.push_back(SseEvent::default().data("[DONE]"));
                        s.ended = true;
                    }
                }
                Err(e) => {
                    s.pending.push_back(data(e.body()));
                    s.ended = true;
                }
            },
            None => {
                s.pending.push_back(data(
                    ApiError::internal("the generation ended early").body(),
                ));
                s.ended = true;
            }
        }
    }
}
