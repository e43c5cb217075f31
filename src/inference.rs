//! The inference thread: owns the model and its cache, and talks to the interface by messages.
//!
//! The interface never waits on the model. It sends [`Request`]s; the thread answers with
//! [`Reply`]s. While generating, the thread checks its inbox between tokens, so new sampling
//! settings apply from the very next token and a cancel stops within one token.

use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::conversation::{chat_prompt, ChatFormat, Turn};
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
    /// The prompt was laid out: its size, and how many old turns were left out to fit.
    Started {
        prompt_tokens: usize,
        dropped_turns: usize,
    },
    Token {
        id: u32,
        text: String,
        logprob: f32,
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
            .spawn(move || run(load, inbox, outbox, shared))
            .expect("can spawn a thread");
        Self {
            requests,
            replies,
            info,
            thread: Some(thread),
        }
    }

    pub fn send(&self, request: Request) {
        // The thread only ends on Shutdown or after an error it has already reported.
        let _ = self.requests.send(request);
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.requests.send(Request::Shutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
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
    while let Ok(request) = inbox.recv() {
        match request {
            Request::Generate { prompt, params } => {
                if let Err(e) = generate(&mut session, prompt, params, &inbox, &outbox) {
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
    inbox: &Receiver<Request>,
    outbox: &Sender<Reply>,
) -> crate::Result<()> {
    let eos = session.eos_id();
    let window = session.window();
    // Room for the reply: what was asked for, but never more than half the window.
    let reserve = params.max_tokens.min(window / 2);
    let (tokens, stop, dropped_turns) = match &prompt {
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
                window,
                reserve,
            )?;
            (
                laid_out.tokens,
                format.stop_sequences(),
                laid_out.dropped_turns,
            )
        }
        Prompt::Complete { text } => (session.tokenizer().encode(text)?, vec![], 0),
    };
    let _ = outbox.send(Reply::Started {
        prompt_tokens: tokens.len(),
        dropped_turns,
    });
    let options = GenerateOptions {
        stop,
        ..GenerateOptions::default()
    };
    let mut generation = session.generate(&tokens, options, params.seed)?;
    loop {
        loop {
            match inbox.try_recv() {
                Ok(Request::SetParams(p)) => params = p,
                Ok(Request::Cancel) | Err(TryRecvError::Disconnected) => {
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
        match generation.step(&params)? {
            Step::Token(token) => {
                let _ = outbox.send(Reply::Token {
                    id: token.id,
                    text: token.text,
                    logprob: token.logprob,
                });
            }
            Step::Done { reason, text } => {
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
