//! The inference thread: owns the model and its cache, and talks to the interface by messages.
//!
//! The interface never waits on the model. It sends [`Request`]s; the thread answers with
//! [`Reply`]s. While generating, the thread checks its inbox between tokens, so new sampling
//! settings apply from the very next token and a cancel stops within one token.

pub mod chat;
pub mod inspect;
mod layout;
mod messages;
mod user_text;

use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::engine::chat::ReplyTokens;
use crate::error::Error;
use crate::generate::bias::resolve_all;
use crate::generate::session::{FinishReason, GenerateOptions, Generation, Session, Step};
use crate::generate::SamplingParams;
use layout::{attention, lay_out, reply_reserve};
pub use messages::{
    AttentionMap, Candidate, ModelInfo, Prompt, PromptPart, PromptScore, PromptToken, Reply,
    Request, ALTERNATIVES,
};
use user_text::user_parts;

/// Something that loads the model on the inference thread (so the interface starts at once):
/// the session, and what the load has to tell the user (where an 8- or 4-bit model came from,
/// a cache file that could not be used), which the interface shows in its status bar since
/// stderr would draw over the screen.
pub type Loader = Box<dyn FnOnce(&dyn Fn(String)) -> crate::Result<(Session, Vec<String>)> + Send>;

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
    let (mut session, load_notes) = match load(&progress) {
        Ok(loaded) => loaded,
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
        load_notes,
        tokenizer,
        anatomy: crate::engine::inspect::Anatomy::of(
            session.config(),
            session.model().has_tied_head(),
        ),
    });
    let _ = outbox.send(Reply::Loaded);
    let mut written = ReplyTokens::default();
    // Whether a view asked for the sampler trace (it costs a little at every token).
    let mut tracing = false;
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
            Request::RecordTrace(on) => {
                tracing = on;
                continue;
            }
            Request::SetParams(_) | Request::Cancel => continue,
        };
        let mut job = Job {
            session: &mut session,
            written: &mut written,
            inbox: &inbox,
            outbox: &outbox,
            deferred: &mut deferred,
            tracing: &mut tracing,
        };
        if let Err(e) = job.generate(prompt, &reply, params) {
            let _ = outbox.send(Reply::Error(e.to_string()));
        }
        // Answered in the order they were asked.
        deferred.reverse();
    }
}

/// What one generation works with.
struct Job<'a> {
    session: &'a mut Session,
    written: &'a mut ReplyTokens,
    inbox: &'a Receiver<Request>,
    outbox: &'a Sender<Reply>,
    deferred: &'a mut Vec<Request>,
    /// Whether to record the sampler trace; a request while writing changes it for good.
    tracing: &'a mut bool,
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
        params.logit_bias =
            resolve_all(&params.logit_bias, session.tokenizer()).map_err(Error::Usage)?;
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
            trace: trace_size(*self.tracing),
            // The same views want the user's text scored, from the prefill that runs anyway.
            score_prompt: *self.tracing,
            ..GenerateOptions::default()
        };
        let is_chat = matches!(prompt, Prompt::Chat { .. });
        let tokenizer = session.shared_tokenizer();
        let written = &mut *self.written;
        let mut remember = |generation: &Generation| {
            if is_chat {
                written.remember(&tokenizer, generation.reply_text(), generation.reply());
            }
        };
        let mut generation = session.branch(&laid_out.tokens, decided, options, params.seed)?;
        if *self.tracing {
            let scores = generation.prompt_scores();
            let parts = user_parts(&tokenizer, eos, &laid_out.user_texts, &scores);
            let _ = outbox.send(Reply::PromptScored(parts));
        }
        if generation.finished().is_some() {
            // The chosen token ends the reply: nothing more to write.
            remember(&generation);
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
                    Ok(Request::SetParams(mut p)) => {
                        // The interface checks a bias before sending it; one that still
                        // names no single token leaves the settings in use unchanged.
                        if let Ok(biases) = resolve_all(&p.logit_bias, &tokenizer) {
                            p.logit_bias = biases;
                            params = p;
                            changed = true;
                        }
                    }
                    Ok(Request::Cancel) | Err(TryRecvError::Disconnected) => {
                        remember(&generation);
                        let stats = generation.stats().clone();
                        let _ = outbox.send(Reply::Finished {
                            reason: None,
                            text: String::new(),
                            stats,
                        });
                        return Ok(());
                    }
                    Ok(Request::RecordTrace(on)) => {
                        *self.tracing = on;
                        generation.set_trace(trace_size(on));
                    }
                    Ok(Request::Shutdown) => return Ok(()),
                    Ok(request @ Request::Attention { .. }) => self.deferred.push(request),
                    Ok(Request::Generate { .. }) | Ok(Request::Branch { .. }) => {}
                    Err(TryRecvError::Empty) => break,
                }
            }
            if changed {
                let _ = outbox.send(Reply::ParamsApplied {
                    from_token: generation.reply().len() + 1,
                });
            }
            match generation.step(&params)? {
                Step::Token(token) => {
                    let stats = generation.stats();
                    if stats.context_shifts > shifts {
                        shifts = stats.context_shifts;
                        let _ = outbox.send(Reply::ContextShifted(shifts));
                    }
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
                        trace: token.trace,
                    });
                }
                Step::Done { reason, text } => {
                    remember(&generation);
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

/// How many candidates a trace records: as many as the alternatives shown, or none when off.
fn trace_size(on: bool) -> usize {
    if on {
        ALTERNATIVES
    } else {
        0
    }
}
