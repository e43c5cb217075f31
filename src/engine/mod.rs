//! The inference thread: owns the model and its cache, and talks to the interface by messages.
//!
//! The interface never waits on the model. It sends [`Request`]s; the thread answers with
//! [`Reply`]s. While generating, the thread checks its inbox between tokens, so new sampling
//! settings apply from the very next token and a cancel stops within one token.

pub mod chat;
pub mod inspect;

use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::engine::chat::{chat_prompt, ChatFormat, ReplyTokens, Turn};
use crate::generate::session::{FinishReason, GenerateOptions, Session, Stats, Step};
use crate::generate::SamplingParams;
use crate::tokenizer::Tokenizer;

/// What to generate after.
#[derive(Debug, Clone)]
pub enum Prompt {
    /// A chat: the turns so far, ending with the user's message.
    Chat {
        format: ChatFormat,
        system: String,
        turns: Vec<Turn>,
    },
    /// A document to continue.
    Complete { text: String },
}

#[derive(Debug, Clone)]
pub enum Request {
    Generate {
        prompt: Prompt,
        params: SamplingParams,
    },
    /// Goes on with a reply whose first tokens are already decided: the kept part of an earlier
    /// reply and the candidate chosen in place of its next token. `max_tokens` counts them.
    Branch {
        prompt: Prompt,
        reply: Vec<u32>,
        params: SamplingParams,
    },
    /// How the last of `reply` (laid after `prompt`) attends to the tokens before it. Asked
    /// while a reply is being written, it is answered when the reply is done.
    Attention {
        serial: u64,
        prompt: Prompt,
        reply: Vec<u32>,
    },
    /// New settings, applied from the next token.
    SetParams(SamplingParams),
    /// Stop the current generation, keeping what was written.
    Cancel,
    Shutdown,
}

/// What the interface needs to know about the loaded model.
#[derive(Clone)]
pub struct ModelInfo {
    pub name: String,
    pub parameters: usize,
    pub device: String,
    pub dtype: String,
    pub window: usize,
    pub tokenizer: Arc<Tokenizer>,
    /// Where the parameters sit, for the anatomy panel.
    pub anatomy: crate::engine::inspect::Anatomy,
}

/// A token the model could have written at a step, with its probability (raw softmax).
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub id: u32,
    /// The token's own text (a cut character shows as U+FFFD).
    pub text: String,
    pub prob: f32,
    /// `<|endoftext|>`: choosing it ends the reply.
    pub ends: bool,
}

/// Attention of one token over the window up to it.
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionMap {
    /// The text of every token attended to, in order; the last is the token itself.
    pub tokens: Vec<String>,
    /// `[layer][head][key]`, one weight per entry of `tokens`.
    pub weights: Vec<Vec<Vec<f32>>>,
}

/// How many alternatives the interface is told about at each step.
pub const ALTERNATIVES: usize = 10;

#[derive(Debug, Clone)]
pub enum Reply {
    /// Loading, with a human-readable stage.
    Progress(String),
    Loaded,
    /// The prompt was laid out: its size, and what was left out to fit the window (old turns
    /// in a chat, the start of the text in completion mode).
    Started {
        prompt_tokens: usize,
        dropped_turns: usize,
        dropped_tokens: usize,
    },
    Token {
        id: u32,
        text: String,
        logprob: f32,
        /// Tokens now in the window (prompt and reply).
        context: usize,
        /// The most likely tokens at this step, most likely first.
        top: Vec<Candidate>,
        /// The settings this token was drawn with.
        params: SamplingParams,
    },
    /// The window filled while writing: the oldest half was dropped (the count so far).
    ContextShifted(usize),
    /// New settings arrived while writing and are used from this token of the reply on.
    ParamsApplied {
        from_token: usize,
    },
    Finished {
        reason: Option<FinishReason>,
        text: String,
        stats: Stats,
    },
    /// The answer to [`Request::Attention`] with the same serial.
    Attention {
        serial: u64,
        map: Result<AttentionMap, String>,
    },
    Error(String),
}

/// Something that loads the model on the inference thread (so the interface starts at once).
pub type Loader = Box<dyn FnOnce(&dyn Fn(String)) -> crate::Result<Session> + Send>;

pub struct Engine {
    pub requests: Sender<Request>,
    pub replies: Receiver<Reply>,
    /// Filled once the model has loaded.
    pub info: Arc<std::sync::OnceLock<ModelInfo>>,
    thread: Option<JoinHandle<()>>,
}

impl Engine {
    pub fn start(load: Loader) -> Self {
        let (requests, inbox) = std::sync::mpsc::channel();
        let (outbox, replies) = std::sync::mpsc::channel();
        let info = Arc::new(std::sync::OnceLock::new());
        let shared = info.clone();
        let thread = std::thread::Builder::new()
            .name("inference".into())
            .spawn(move || {
                // A panic in the engine becomes an error in the interface, not a dead screen.
                let crashed = outbox.clone();
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run(load, inbox, outbox, shared)
                }));
                if let Err(payload) = result {
                    let what = payload
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown cause".into());
                    let _ = crashed.send(Reply::Error(format!("the engine stopped: {what}")));
                }
            })
            .expect("can spawn a thread");
        Self {
            requests,
            replies,
            info,
            thread: Some(thread),
        }
    }

    /// Sends a request; false when the engine thread has ended (after a load error or a crash,
    /// both already reported as [`Reply::Error`]).
    pub fn send(&self, request: Request) -> bool {
        self.requests.send(request).is_ok()
    }
}

impl Drop for Engine {
    /// Asks the thread to stop and waits briefly. It stops within one token when generating;
    /// while the model is still loading it cannot be interrupted, so it is left to end with the
    /// process rather than holding up the exit.
    fn drop(&mut self) {
        let _ = self.requests.send(Request::Shutdown);
        if let Some(thread) = self.thread.take() {
            let deadline = Instant::now() + Duration::from_millis(500);
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
    }
}

fn run(
    load: Loader,
    inbox: Receiver<Request>,
    outbox: Sender<Reply>,
    info: Arc<std::sync::OnceLock<ModelInfo>>,
) {
    let progress = |stage: String| {
        let _ = outbox.send(Reply::Progress(stage));
    };
    let mut session = match load(&progress) {
        Ok(session) => session,
        Err(e) => {
            let _ = outbox.send(Reply::Error(format!("cannot load the model: {e}")));
            return;
        }
    };
    let tokenizer = session.shared_tokenizer();
    let _ = info.set(ModelInfo {
        name: session.name.clone(),
        parameters: session.parameter_count(),
        device: crate::runtime::device::device_name(session.device()),
        dtype: session.weight_format().to_string(),
        window: session.window(),
        tokenizer,
        anatomy: crate::engine::inspect::Anatomy::of(
            session.config(),
            session.model().has_tied_head(),
        ),
    });
    let _ = outbox.send(Reply::Loaded);
    let mut written = ReplyTokens::default();
    // Requests that wait for the reply being written (attention needs the model to itself).
    let mut deferred = Vec::new();
    while let Some(request) = deferred.pop().or_else(|| inbox.recv().ok()) {
        let (prompt, reply, params) = match request {
            Request::Generate { prompt, params } => (prompt, vec![], params),
            Request::Branch {
                prompt,
                reply,
                params,
            } => (prompt, reply, params),
            Request::Attention {
                serial,
                prompt,
                reply,
            } => {
                let map = attention(&session, &prompt, &reply, &written).map_err(|e| e.to_string());
                let _ = outbox.send(Reply::Attention { serial, map });
                continue;
            }
            Request::Shutdown => return,
            Request::SetParams(_) | Request::Cancel => continue,
        };
        let mut job = Job {
            session: &mut session,
            written: &mut written,
            inbox: &inbox,
            outbox: &outbox,
            deferred: &mut deferred,
        };
        if let Err(e) = job.generate(prompt, &reply, params) {
            let _ = outbox.send(Reply::Error(e.to_string()));
        }
        // Answered in the order they were asked.
        deferred.reverse();
    }
}

/// A prompt in tokens, as it goes to the model.
struct LaidOut {
    tokens: Vec<u32>,
    stop: Vec<String>,
    dropped_turns: usize,
    dropped_tokens: usize,
}

/// Lays out `prompt` leaving `reserve` tokens of the window for the reply.
fn lay_out(
    session: &Session,
    prompt: &Prompt,
    written: &ReplyTokens,
    reserve: usize,
) -> crate::Result<LaidOut> {
    let window = session.window();
    Ok(match prompt {
        Prompt::Chat {
            format,
            system,
            turns,
        } => {
            let laid_out = chat_prompt(
                session.tokenizer(),
                session.eos_id(),
                *format,
                system,
                turns,
                written,
                window,
                reserve,
            )?;
            LaidOut {
                tokens: laid_out.tokens,
                stop: format.stop_sequences(),
                dropped_turns: laid_out.dropped_turns,
                dropped_tokens: 0,
            }
        }
        Prompt::Complete { text } => {
            // Keep the end of a long text, with room left for the continuation.
            let mut tokens = session.tokenizer().encode(text)?;
            let budget = window.saturating_sub(reserve).max(1);
            let cut = tokens.len().saturating_sub(budget);
            tokens.drain(..cut);
            LaidOut {
                tokens,
                stop: vec![],
                dropped_turns: 0,
                dropped_tokens: cut,
            }
        }
    })
}

/// Room kept for a reply: what was asked for, but never more than half the window.
fn reply_reserve(session: &Session, max_tokens: usize) -> usize {
    max_tokens.min(session.window() / 2)
}

/// The attention of the last of `reply` after `prompt`, laid out as for writing it (the window's
/// most recent tokens when they do not all fit).
fn attention(
    session: &Session,
    prompt: &Prompt,
    reply: &[u32],
    written: &ReplyTokens,
) -> crate::Result<AttentionMap> {
    let reserve = reply_reserve(session, reply.len());
    let mut ids = lay_out(session, prompt, written, reserve)?.tokens;
    ids.extend_from_slice(reply);
    let cut = ids.len().saturating_sub(session.window());
    ids.drain(..cut);
    let weights = crate::engine::inspect::last_token_attention(session.model(), &ids)?;
    let tokenizer = session.tokenizer();
    let tokens = ids.iter().map(|&id| tokenizer.token_text(id)).collect();
    Ok(AttentionMap { tokens, weights })
}

/// `params` for the rest of a reply of which `decided` tokens are already written.
fn for_the_rest(params: &SamplingParams, decided: usize) -> SamplingParams {
    SamplingParams {
        max_tokens: params.max_tokens.saturating_sub(decided),
        ..params.clone()
    }
}

/// What one generation works with.
struct Job<'a> {
    session: &'a mut Session,
    written: &'a mut ReplyTokens,
    inbox: &'a Receiver<Request>,
    outbox: &'a Sender<Reply>,
    deferred: &'a mut Vec<Request>,
}

impl Job<'_> {
    /// Runs one generation after `prompt` and the already `decided` tokens of the reply,
    /// reading the inbox between tokens. Returns early on cancel or shutdown.
    fn generate(
        &mut self,
        prompt: Prompt,
        decided: &[u32],
        mut params: SamplingParams,
    ) -> crate::Result<()> {
        let (session, outbox, inbox) = (&mut *self.session, self.outbox, self.inbox);
        let eos = session.eos_id();
        let reserve = reply_reserve(session, params.max_tokens);
        let laid_out = lay_out(session, &prompt, self.written, reserve)?;
        let _ = outbox.send(Reply::Started {
            prompt_tokens: laid_out.tokens.len() + decided.len(),
            dropped_turns: laid_out.dropped_turns,
            dropped_tokens: laid_out.dropped_tokens,
        });
        let options = GenerateOptions {
            stop: laid_out.stop,
            top_n: ALTERNATIVES,
            ..GenerateOptions::default()
        };
        let is_chat = matches!(prompt, Prompt::Chat { .. });
        let tokenizer = session.shared_tokenizer();
        let written = &mut *self.written;
        let mut remember = |text: &str, ids: &[u32]| {
            if is_chat {
                written.remember(&tokenizer, text, ids);
            }
        };
        // The reply as the interface has it, and the ids written, to lay out the next turn.
        let kept = decided.strip_suffix(&[eos]);
        let mut reply_text = tokenizer.decode(kept.unwrap_or(decided));
        let mut reply_ids = decided.to_vec();
        let mut tokens = laid_out.tokens;
        tokens.extend_from_slice(decided);
        let mut generation = session.generate(&tokens, options, params.seed)?;
        generation.continue_after(&reply_text);
        if kept.is_some() {
            // The chosen token ends the reply: nothing more to write.
            remember(&reply_text, &reply_ids[..reply_ids.len() - 1]);
            let _ = outbox.send(Reply::Finished {
                reason: Some(FinishReason::Eos),
                text: String::new(),
                stats: generation.stats().clone(),
            });
            return Ok(());
        }
        let mut shifts = 0;
        loop {
            let mut changed = false;
            loop {
                match inbox.try_recv() {
                    Ok(Request::SetParams(p)) => {
                        params = p;
                        changed = true;
                    }
                    Ok(Request::Cancel) | Err(TryRecvError::Disconnected) => {
                        remember(&reply_text, &reply_ids);
                        let stats = generation.stats().clone();
                        let _ = outbox.send(Reply::Finished {
                            reason: None,
                            text: String::new(),
                            stats,
                        });
                        return Ok(());
                    }
                    Ok(Request::Shutdown) => return Ok(()),
                    Ok(request @ Request::Attention { .. }) => self.deferred.push(request),
                    Ok(Request::Generate { .. }) | Ok(Request::Branch { .. }) => {}
                    Err(TryRecvError::Empty) => break,
                }
            }
            if changed {
                let _ = outbox.send(Reply::ParamsApplied {
                    from_token: decided.len() + generation.stats().generated_tokens + 1,
                });
            }
            match generation.step(&for_the_rest(&params, decided.len()))? {
                Step::Token(token) => {
                    let stats = generation.stats();
                    if stats.context_shifts > shifts {
                        shifts = stats.context_shifts;
                        let _ = outbox.send(Reply::ContextShifted(shifts));
                    }
                    reply_ids.push(token.id);
                    reply_text.push_str(&token.text);
                    let top = token
                        .top
                        .iter()
                        .map(|&(id, prob)| Candidate {
                            id,
                            text: tokenizer.token_text(id),
                            prob,
                            ends: id == eos,
                        })
                        .collect();
                    let _ = outbox.send(Reply::Token {
                        id: token.id,
                        text: token.text,
                        logprob: token.logprob,
                        context: generation.tokens().len(),
                        top,
                        params: params.clone(),
                    });
                }
                Step::Done { reason, text } => {
                    reply_text.push_str(&text);
                    remember(&reply_text, &reply_ids);
                    let stats = generation.stats().clone();
                    let _ = outbox.send(Reply::Finished {
                        reason: Some(reason),
                        text,
                        stats,
                    });
                    return Ok(());
                }
            }
        }
    }
}
