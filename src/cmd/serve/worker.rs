//! The engine thread of the server: it owns the [`Session`] and runs one job at a time, in the
//! order they came (first come, first served). A job carries its prompts and settings, a
//! channel for what it produces, and a cancel flag; the flag and the channel are checked
//! before every token, so a client that goes away (its receiver dropped) stops its
//! generation at the next token and the next job starts.
//!
//! One model and one cache: requests are not batched. A request whose tokens begin with what
//! the cache holds (the same system prompt, the chat so far) prefills only the rest.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use tokio::sync::mpsc::UnboundedSender;

use crate::generate::perplexity::{score_ids, TokenScore};
use crate::generate::session::{FinishReason, GenerateOptions, Session, Stats, Step, Token};
use crate::generate::SamplingParams;

/// One request's work: `n` choices for each prompt, choice `p * n + j` for prompt `p`.
pub struct Job {
    pub prompts: Vec<Vec<u32>>,
    pub n: usize,
    pub params: SamplingParams,
    pub options: GenerateOptions,
    /// `echo` with `logprobs`: score the prompt's tokens, with this many alternatives each.
    pub prompt_logprobs: Option<usize>,
    pub events: UnboundedSender<Event>,
    pub cancel: Arc<AtomicBool>,
}

/// What a job sends back, in order: for each choice its prompt's scores (when asked for),
/// its tokens, and `Done`.
#[derive(Debug)]
pub enum Event {
    Prompt {
        choice: usize,
        /// One per prompt token; the first is `None` (nothing predicts it).
        scores: Vec<Option<TokenScore>>,
    },
    Token {
        choice: usize,
        token: Token,
    },
    Done {
        choice: usize,
        reason: FinishReason,
        /// Text released at the end (held-back bytes of a character, a stop sequence's
        /// prefix that turned out not to be one).
        text: String,
        /// Tokens generated; prompt tokens run through the model (the rest came from the
        /// cache); times.
        stats: Stats,
    },
    /// The job failed; nothing more comes.
    Failed(String),
}

/// How the worker is doing, for `/health` and the tests.
#[derive(Debug, Default)]
pub struct WorkerStatus {
    /// Jobs waiting, the running one included.
    pub pending: AtomicUsize,
    pub busy: AtomicBool,
    pub completed: AtomicUsize,
}

/// The server's side of the worker: submit jobs; cloning shares the queue.
#[derive(Clone)]
pub struct WorkerHandle {
    queue: mpsc::Sender<Job>,
    pub status: Arc<WorkerStatus>,
    /// Set at shutdown: the running job stops at its next token, queued ones are refused.
    pub shutdown: Arc<AtomicBool>,
}

impl WorkerHandle {
    /// Queues `job`; false when the worker has stopped.
    pub fn submit(&self, job: Job) -> bool {
        if self.shutdown.load(Ordering::SeqCst) {
            return false;
        }
        self.status.pending.fetch_add(1, Ordering::SeqCst);
        if self.queue.send(job).is_err() {
            self.status.pending.fetch_sub(1, Ordering::SeqCst);
            return false;
        }
        true
    }
}

/// Starts the worker thread; it ends when every handle is dropped.
pub fn spawn(session: Session) -> (WorkerHandle, JoinHandle<()>) {
    let (queue, jobs) = mpsc::channel::<Job>();
    let status = Arc::new(WorkerStatus::default());
    let shutdown = Arc::new(AtomicBool::new(false));
    let handle = WorkerHandle {
        queue,
        status: status.clone(),
        shutdown: shutdown.clone(),
    };
    let thread = std::thread::Builder::new()
        .name("gpt2-tui-serve-worker".into())
        .spawn(move || run(session, jobs, &status, &shutdown))
        .expect("the worker thread starts");
    (handle, thread)
}

fn run(mut session: Session, jobs: mpsc::Receiver<Job>, status: &WorkerStatus, stop: &AtomicBool) {
    for job in jobs {
        status.busy.store(true, Ordering::SeqCst);
        if stop.load(Ordering::SeqCst) {
            let _ = job
                .events
                .send(Event::Failed("the server is shutting down".into()));
        } else if !cancelled(&job, stop) {
            // A panic deep in the model must not take the server down: the job fails, the
            // cache (perhaps half written) is emptied, and the next job runs.
            let outcome =
                std::panic::catch_unwind(AssertUnwindSafe(|| run_job(&mut session, &job, stop)));
            let failure = match outcome {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => {
                    session.forget_cache();
                    Some("internal error while generating".into())
                }
            };
            let failure = failure.or_else(|| {
                // Stopped part way by the shutdown: say so rather than end in silence.
                stop.load(Ordering::SeqCst)
                    .then(|| "the server is shutting down".to_string())
            });
            if let Some(message) = failure {
                let _ = job.events.send(Event::Failed(message));
            }
        }
        status.busy.store(false, Ordering::SeqCst);
        status.pending.fetch_sub(1, Ordering::SeqCst);
        status.completed.fetch_add(1, Ordering::SeqCst);
    }
}

/// The client has gone (its receiver dropped, or its handler said so) or the server stops.
fn cancelled(job: &Job, stop: &AtomicBool) -> bool {
    job.events.is_closed() || job.cancel.load(Ordering::SeqCst) || stop.load(Ordering::SeqCst)
}

fn run_job(session: &mut Session, job: &Job, stop: &AtomicBool) -> crate::Result<()> {
    for (p, prompt) in job.prompts.iter().enumerate() {
        let scores = match job.prompt_logprobs {
            Some(top) => {
                let mut scores = Vec::with_capacity(prompt.len());
                score_ids(session, prompt, None, top, |_, _, score| {
                    scores.push(score);
                    Ok(())
                })?;
                Some(scores)
            }
            None => None,
        };
        for j in 0..job.n {
            let choice = p * job.n + j;
            if cancelled(job, stop) {
                return Ok(());
            }
            if let Some(scores) = &scores {
                let _ = job.events.send(Event::Prompt {
                    choice,
                    scores: scores.clone(),
                });
            }
            if job.params.max_tokens == 0 {
                let _ = job.events.send(Event::Done {
                    choice,
                    reason: FinishReason::MaxTokens,
                    text: String::new(),
                    stats: Stats {
                        prompt_tokens: prompt.len(),
                        ..Stats::default()
                    },
                });
                continue;
            }
            // The n choices of a seeded request differ from each other and repeat run to run.
            let seed = job.params.seed.map(|s| s.wrapping_add(j as u64));
            let mut generation = session.generate(prompt, job.options.clone(), seed)?;
            loop {
                if cancelled(job, stop) {
                    return Ok(());
                }
                match generation.step(&job.params)? {
                    Step::Token(token) => {
                        let _ = job.events.send(Event::Token { choice, token });
                    }
                    Step::Done { reason, text } => {
                        let _ = job.events.send(Event::Done {
                            choice,
                            reason,
                            text,
                            stats: generation.stats().clone(),
                        });
                        break;
                    }
                }
            }
        }
    }
    Ok(())
}
