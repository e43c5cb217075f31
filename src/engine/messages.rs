//! What the interface and the engine thread say to each other.

use std::sync::Arc;

use crate::engine::chat::{ChatFormat, Turn};
use crate::generate::session::{FinishReason, Stats};
use crate::generate::trace::Trace;
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
    /// Record what the views show, or stop: the sampler trace of each token (for
    /// [`ALTERNATIVES`] candidates) from the next token on, and the scores of the user's own
    /// text from the next prefill on ([`Reply::PromptScored`]). Off at the start; a view that
    /// shows them (probability colours, the token cursor) turns it on.
    RecordTrace(bool),
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
    /// What the load had to say (see [`super::Loader`]).
    pub load_notes: Vec<String>,
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

/// What the model expected at one token of the user's own text.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptToken {
    pub id: u32,
    /// The part of the user's text this token holds (a character cut between tokens goes with
    /// the token that completes it, so the texts of a part's tokens rebuild it exactly).
    pub text: String,
    /// `None` for the first token of the context (nothing precedes it) and for tokens cut
    /// from the window.
    pub score: Option<PromptScore>,
}

/// The distribution that predicted a prompt token, and where the token stood in it.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptScore {
    /// Probability of the actual token (raw softmax).
    pub prob: f32,
    /// 1 when the token was the model's first choice.
    pub rank: usize,
    /// Entropy of the distribution, in nats.
    pub entropy: f32,
    /// The most likely tokens there, most likely first.
    pub top: Vec<Candidate>,
}

/// The user's texts of a prompt, token by token, keyed by the chat turn (`None`: the document
/// of completion mode). `text` is the whole text as the model read it (a message trimmed).
#[derive(Debug, Clone, PartialEq)]
pub struct PromptPart {
    pub turn: Option<usize>,
    pub text: String,
    pub tokens: Vec<PromptToken>,
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
        /// What each sampling stage did at this step, while recording is on
        /// ([`Request::RecordTrace`]).
        trace: Option<Trace>,
    },
    /// What the model made of the user's text in the prompt just prefilled, while recording
    /// is on ([`Request::RecordTrace`]); sent before the reply's first token.
    PromptScored(Vec<PromptPart>),
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
