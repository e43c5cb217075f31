//! The inference thread: owns the model and its cache, and talks to the interface by messages.
//!
//! The interface never waits on the model. It sends [`Request`]s; the thread answers with
//! [`Reply`]s. While generating, the thread checks its inbox between tokens, so new sampling
//! settings apply from the very next token and a cancel stops within one token.

use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::conversation::{chat_prompt, ChatFormat, ReplyTokens, Turn};
use crate::generate::SamplingParams;
use crate::session::{FinishReason, GenerateOptions, Session, Stats, Step};
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
    pub anatomy: crate::inspect::Anatomy,
}

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
        device: crate::model::device::device_name(session.device()),
        dtype: session.weight_format().to_string(),
        window: session.window(),
        tokenizer,
        anatomy: crate::inspect::Anatomy::of(session.config(), session.model().has_tied_head()),
    });
    let _ = outbox.send(Reply::Loaded);
    let mut written = ReplyTokens::default();
    while let Ok(request) = inbox.recv() {
        match request {
            Request::Generate { prompt, params } => {
                let result = generate(&mut session, prompt, params, &mut written, &inbox, &outbox);
                if let Err(e) = result {
                    let _ = outbox.send(Reply::Error(e.to_string()));
                }
            }
            Request::Shutdown => return,
            Request::SetParams(_) | Request::Cancel => {}
        }
    }
}

/// Runs one generation, reading the inbox between tokens. Returns early on cancel or shutdown.
fn generate(
    session: &mut Session,
    prompt: Prompt,
    mut params: SamplingParams,
    written: &mut ReplyTokens,
    inbox: &Receiver<Request>,
    outbox: &Sender<Reply>,
) -> crate::Result<()> {
    let eos = session.eos_id();
    let window = session.window();
    // Room for the reply: what was asked for, but never more than half the window.
    let reserve = params.max_tokens.min(window / 2);
    let (tokens, stop, dropped_turns, dropped_tokens) = match &prompt {
        Prompt::Chat {
            format,
            system,
            turns,
        } => {
            let laid_out = chat_prompt(
                session.tokenizer(),
                eos,
                *format,
                system,
                turns,
                written,
                window,
                reserve,
            )?;
            (
                laid_out.tokens,
                format.stop_sequences(),
                laid_out.dropped_turns,
                0,
            )
        }
        Prompt::Complete { text } => {
            // Keep the end of a long text, with room left for the continuation.
            let mut tokens = session.tokenizer().encode(text)?;
            let budget = window.saturating_sub(reserve).max(1);
            let cut = tokens.len().saturating_sub(budget);
            tokens.drain(..cut);
            (tokens, vec![], 0, cut)
        }
    };
    let _ = outbox.send(Reply::Started {
        prompt_tokens: tokens.len(),
        dropped_turns,
        dropped_tokens,
    });
    let options = GenerateOptions {
        stop,
        ..GenerateOptions::default()
    };
    let is_chat = matches!(prompt, Prompt::Chat { .. });
    let tokenizer = session.shared_tokenizer();
    let mut generation = session.generate(&tokens, options, params.seed)?;
    let mut shifts = 0;
    // The reply as the interface receives it, and the ids drawn, to lay out the next turn.
    let mut reply_text = String::new();
    let mut reply_ids = Vec::new();
    let mut remember = |text: &str, ids: &[u32]| {
        if is_chat {
            written.remember(&tokenizer, text, ids);
        }
    };
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
                Ok(Request::Generate { .. }) | Err(TryRecvError::Empty) => break,
            }
        }
        if changed {
            let _ = outbox.send(Reply::ParamsApplied {
                from_token: generation.stats().generated_tokens + 1,
            });
        }
        match generation.step(&params)? {
            Step::Token(token) => {
                let stats = generation.stats();
                if stats.context_shifts > shifts {
                    shifts = stats.context_shifts;
                    let _ = outbox.send(Reply::ContextShifted(shifts));
                }
                reply_ids.push(token.id);
                reply_text.push_str(&token.text);
                let _ = outbox.send(Reply::Token {
                    id: token.id,
                    text: token.text,
                    logprob: token.logprob,
                    context: generation.tokens().len(),
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
