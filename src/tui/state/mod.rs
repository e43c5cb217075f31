//! The interface's state and how actions change it. Drawing only reads this; the event loop
//! only turns events into actions and sends the requests `update` returns to the engine.

use std::collections::BTreeMap;
use std::time::Instant;

use crossterm::event::{KeyEvent, MouseEventKind};
use serde::{Deserialize, Serialize};

mod commands;
pub mod inspect;
mod key_actions;
pub mod replies;
mod transcript;

use crate::engine::chat::{ChatFormat, Role, Turn};
use crate::engine::{ModelInfo, Prompt, Reply, Request};
use crate::generate::SamplingParams;
use crate::tui::theme::Theme;
use inspect::Inspect;
use replies::{Branches, Piece};
pub use transcript::Transcript;

/// The key of completion mode's continuation in [`App::replies`].
pub const CONTINUATION: usize = usize::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Chat,
    Complete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Input,
    Panel,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EngineState {
    Loading(String),
    Idle,
    Generating,
    Failed(String),
}

/// Everything that can happen to the interface.
#[derive(Debug, Clone)]
pub enum Action {
    Key(KeyEvent),
    Paste(String),
    Scroll(i32),
    Reply(Reply),
    /// The engine finished loading; carries what the status bar shows.
    Loaded(ModelSummary),
    /// The engine thread has ended (a request could not be delivered).
    EngineGone,
    /// The terminal changed size: nothing to change, only to draw again.
    Resize,
    /// A frame was drawn: the conversation's layout in it.
    Drawn(BodyLayout),
}

/// How the conversation was laid out at the last frame: plain numbers the view hands back
/// after drawing, not a cache of what it drew.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodyLayout {
    /// Wrapped lines in all.
    pub lines: usize,
    /// Lines that fit in the pane.
    pub height: usize,
    /// Lines of each block drawn (the system text, each turn, or the document).
    pub block_lines: Vec<usize>,
}

impl BodyLayout {
    /// Lines above block `index`; `None` when it was not drawn.
    pub fn lines_before(&self, index: usize) -> Option<usize> {
        (index < self.block_lines.len()).then(|| self.block_lines[..index].iter().sum())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelSummary {
    pub name: String,
    pub parameters: usize,
    pub device: String,
    pub dtype: String,
    pub window: usize,
}

impl From<&ModelInfo> for ModelSummary {
    fn from(info: &ModelInfo) -> Self {
        Self {
            name: info.name.clone(),
            parameters: info.parameters,
            device: info.device.clone(),
            dtype: info.dtype.clone(),
            window: info.window,
        }
    }
}

pub struct App {
    pub mode: Mode,
    pub format: ChatFormat,
    pub system: String,
    pub turns: Vec<Turn>,
    /// Completion mode's text; the model continues it at the end.
    pub document: String,
    /// Where the last continuation began in `document` (for regenerate).
    pub continuation_start: Option<usize>,
    pub input: String,
    /// Cursor position in `input`, in bytes.
    pub cursor: usize,
    pub history: Vec<String>,
    history_pos: Option<usize>,
    pub params: SamplingParams,
    pub focus: Focus,
    pub selected: usize,
    /// The first conversation line shown when scrolled back; `None` follows the stream.
    pub scroll_top: Option<usize>,
    /// The conversation's layout at the last frame, as the view reported it (so scrolling can
    /// be clamped and paged without knowing the layout).
    pub layout: BodyLayout,
    pub engine: EngineState,
    /// The last reply's figures for the status bar.
    pub stats: Stats,
    pub model: Option<ModelSummary>,
    /// A message sent while the model was loading, to be answered once it is ready.
    pub queued: bool,
    pub message: Option<String>,
    /// The popups over the panes.
    pub overlay: Overlay,
    pub themes: BTreeMap<String, Theme>,
    pub theme: Theme,
    pub quit: bool,
    /// Colour generated tokens by the probability they were drawn with.
    pub show_probs: bool,
    /// Each model reply's tokens (probabilities, alternatives, settings) and its branches, by
    /// turn index; completion mode's last continuation is under [`CONTINUATION`].
    pub replies: BTreeMap<usize, Branches>,
    /// The token cursor and what it shows, while inspecting a reply.
    pub inspect: Option<Inspect>,
    /// Tags attention requests, so an answer for a token the cursor has left is ignored.
    pub(super) attention_serial: u64,
    /// The input split into tokens: 0 off, 1 tokens, 2 tokens with ids.
    pub token_view: u8,
    /// Tokens in the input, counted as you type.
    pub input_tokens: usize,
    /// The input split into tokens (for the tokenizer view), and the text they were made from.
    pub input_rows: Vec<crate::engine::inspect::TokenRow>,
    tokenized_input: String,
    pub tokenizer: Option<std::sync::Arc<crate::tokenizer::Tokenizer>>,
    pub anatomy: Option<crate::engine::inspect::Anatomy>,
}

/// What the status bar shows of the engine's work on the current (or last) reply.
#[derive(Debug, Default)]
pub struct Stats {
    pub tokens_per_s: f64,
    pub context_used: usize,
    pub dropped_turns: usize,
    /// Tokens from the start of the text left out to fit (completion mode).
    pub dropped_tokens: usize,
    /// Times the window filled during the current (or last) reply, each dropping its oldest half.
    pub context_shifts: usize,
    /// Prompt tokens run through the model for the last reply, and the prompt's size: a new
    /// chat turn reuses the cached prefix, so the first is much smaller than the second.
    pub prefill: Option<(usize, usize)>,
    pub(super) generation_started: Option<Instant>,
    pub(super) generated: usize,
}

/// The popups that take every key while open.
#[derive(Debug, Default)]
pub struct Overlay {
    pub show_help: bool,
    /// Lines the help overlay is scrolled down (it can be taller than a small terminal).
    pub help_scroll: usize,
    pub show_anatomy: bool,
}

impl App {
    pub fn new(
        params: SamplingParams,
        mode: Mode,
        format: ChatFormat,
        system: String,
        themes: BTreeMap<String, Theme>,
        theme: &str,
    ) -> Self {
        let (theme, message) = match themes.get(theme) {
            Some(t) => (t.clone(), None),
            None => (
                Theme::default_theme(),
                Some(format!("no theme named \"{theme}\"; using dark")),
            ),
        };
        Self {
            mode,
            format,
            system,
            turns: Vec::new(),
            document: String::new(),
            continuation_start: None,
            input: String::new(),
            cursor: 0,
            history: Vec::new(),
            history_pos: None,
            params,
            focus: Focus::Input,
            selected: 0,
            scroll_top: None,
            layout: BodyLayout::default(),
            engine: EngineState::Loading("starting".into()),
            stats: Stats::default(),
            overlay: Overlay::default(),
            model: None,
            queued: false,
            message,
            themes,
            theme,
            quit: false,
            show_probs: false,
            replies: BTreeMap::new(),
            inspect: None,
            attention_serial: 0,
            token_view: 0,
            input_tokens: 0,
            input_rows: Vec::new(),
            tokenized_input: String::new(),
            tokenizer: None,
            anatomy: None,
        }
    }

    pub fn is_generating(&self) -> bool {
        self.engine == EngineState::Generating
    }

    /// Applies one action; returns what to ask of the engine.
    pub fn update(&mut self, action: Action) -> Vec<Request> {
        let requests = self.apply(action);
        if self.input != self.tokenized_input {
            self.count_input_tokens();
        }
        requests
    }

    /// Splits the input into tokens again: called only when its text changed (or the tokenizer
    /// arrived), so streamed tokens and redraws never re-tokenize it.
    pub fn count_input_tokens(&mut self) {
        self.input_rows = match &self.tokenizer {
            Some(t) => crate::engine::inspect::token_rows(t, &self.input).unwrap_or_default(),
            None => Vec::new(),
        };
        self.input_tokens = self.input_rows.len();
        self.tokenized_input.clone_from(&self.input);
    }

    fn apply(&mut self, action: Action) -> Vec<Request> {
        match action {
            Action::Key(key) => self.on_key(key),
            Action::Paste(text) => {
                self.insert(&text.replace("\r\n", "\n").replace('\r', "\n"));
                vec![]
            }
            Action::Scroll(lines) => {
                self.scroll(lines as i64);
                vec![]
            }
            Action::Loaded(summary) => {
                self.model = Some(summary);
                self.engine = EngineState::Idle;
                if std::mem::take(&mut self.queued) {
                    return self.generate();
                }
                vec![]
            }
            Action::Reply(reply) => {
                self.on_reply(reply);
                vec![]
            }
            Action::Resize => vec![],
            Action::Drawn(layout) => {
                self.layout = layout;
                vec![]
            }
            Action::EngineGone => {
                let why = match &self.engine {
                    EngineState::Failed(e) => e.clone(),
                    _ => "the engine has stopped; restart gpt2-tui".into(),
                };
                self.engine = EngineState::Failed(why.clone());
                self.message = Some(why);
                vec![]
            }
        }
    }

    fn on_reply(&mut self, reply: Reply) {
        match reply {
            Reply::Progress(stage) => self.engine = EngineState::Loading(stage),
            Reply::Loaded => {}
            Reply::Started {
                prompt_tokens,
                dropped_turns,
                dropped_tokens,
            } => {
                self.stats.context_used = prompt_tokens;
                self.stats.dropped_turns = dropped_turns;
                self.stats.dropped_tokens = dropped_tokens;
                self.stats.context_shifts = 0;
                self.stats.generation_started = Some(Instant::now());
                self.stats.generated = 0;
            }
            Reply::ParamsApplied { from_token } => {
                self.message = Some(format!("settings in use from token {from_token}"));
            }
            Reply::ContextShifted(times) => self.stats.context_shifts = times,
            Reply::Token {
                id,
                text,
                logprob,
                context,
                top,
                params,
            } => {
                self.append_output(&text);
                let key = self.writing_key();
                self.replies.entry(key).or_default().push_piece(Piece {
                    id,
                    text,
                    prob: logprob.exp(),
                    top,
                    params,
                });
                self.stats.generated += 1;
                self.stats.context_used = context;
                if let Some(started) = self.stats.generation_started {
                    let seconds = started.elapsed().as_secs_f64();
                    if seconds > 0.0 {
                        self.stats.tokens_per_s = self.stats.generated as f64 / seconds;
                    }
                }
            }
            Reply::Finished {
                reason,
                text,
                stats,
            } => {
                self.append_output(&text);
                let key = self.writing_key();
                if let Some(reply) = self.replies.get_mut(&key) {
                    reply.push_text(&text);
                }
                self.engine = EngineState::Idle;
                self.stats.prefill = Some((stats.prefill_tokens, stats.prompt_tokens));
                if stats.generated_tokens > 1 {
                    self.stats.tokens_per_s = stats.decode_tokens_per_s();
                }
                self.stats.context_shifts = self.stats.context_shifts.max(stats.context_shifts);
                if reason.is_none() {
                    self.message = Some("stopped".into());
                }
            }
            Reply::Attention { serial, map } => self.on_attention(serial, map),
            Reply::Error(e) => {
                self.engine = if self.model.is_none() {
                    EngineState::Failed(e.clone())
                } else {
                    EngineState::Idle
                };
                self.message = Some(e);
            }
        }
    }

    /// Where the reply being written is kept in [`App::replies`].
    fn writing_key(&self) -> usize {
        match self.mode {
            Mode::Chat => self.turns.len().saturating_sub(1),
            Mode::Complete => CONTINUATION,
        }
    }

    /// Forgets a reply's tokens and branches (the reply is gone or its text was replaced), and
    /// the token cursor on it.
    pub(super) fn forget_reply(&mut self, key: usize) {
        self.replies.remove(&key);
        if self.inspect.as_ref().is_some_and(|i| i.reply == key) {
            self.inspect = None;
        }
    }

    fn append_output(&mut self, text: &str) {
        match self.mode {
            Mode::Chat => match self.turns.last_mut() {
                Some(turn) if turn.role == Role::Model => turn.text.push_str(text),
                _ => self.turns.push(Turn {
                    role: Role::Model,
                    text: text.to_string(),
                }),
            },
            Mode::Complete => self.document.push_str(text),
        }
    }

    /// Scrolls the conversation `up` lines (negative: down). Reaching the bottom follows the
    /// stream again; while scrolled back the view stays put as new text arrives.
    pub fn scroll(&mut self, up: i64) {
        let (total, height) = self.body_metrics();
        let bottom = total.saturating_sub(height) as i64;
        let top = (self.scroll_top.map_or(bottom, |t| t as i64) - up).clamp(0, bottom);
        self.scroll_top = (top < bottom).then_some(top as usize);
    }

    /// Lines that PgUp/PgDn move: the visible height less one line of overlap.
    pub(super) fn page(&self) -> usize {
        self.body_metrics().1.saturating_sub(1).max(1)
    }

    /// The conversation's wrapped line count and visible height at the last frame.
    pub fn body_metrics(&self) -> (usize, usize) {
        (self.layout.lines, self.layout.height)
    }

    /// A live change reaches a running generation at its next token.
    pub(super) fn params_changed(&self) -> Vec<Request> {
        if self.is_generating() {
            vec![Request::SetParams(self.params.clone())]
        } else {
            vec![]
        }
    }

    pub(super) fn generate(&mut self) -> Vec<Request> {
        if let EngineState::Failed(e) = &self.engine {
            self.message = Some(e.clone());
            return vec![];
        }
        if self.model.is_none() {
            // Answered as soon as the model is ready.
            self.queued = true;
            self.message = Some(
                "the model is still loading: your message will be sent when it is ready".into(),
            );
            return vec![];
        }
        self.start_writing();
        let prompt = match self.mode {
            Mode::Chat => self.prompt_before(self.turns.len()),
            Mode::Complete => {
                self.continuation_start = Some(self.document.len());
                self.forget_reply(CONTINUATION);
                self.prompt_before(CONTINUATION)
            }
        };
        vec![Request::Generate {
            prompt,
            params: self.params.clone(),
        }]
    }

    /// The state of a reply under way: the view follows it.
    pub(super) fn start_writing(&mut self) {
        self.scroll_top = None;
        self.message = None;
        self.engine = EngineState::Generating;
    }

    /// What the model reads before the reply under `key`: the turns before it, or the
    /// document before the continuation.
    pub(super) fn prompt_before(&self, key: usize) -> Prompt {
        match key {
            CONTINUATION => {
                let start = self
                    .continuation_start
                    .unwrap_or(self.document.len())
                    .min(self.document.len());
                Prompt::Complete {
                    text: self.document.get(..start).unwrap_or_default().to_string(),
                }
            }
            turn => Prompt::Chat {
                format: self.format,
                system: self.system.clone(),
                turns: self.turns[..turn.min(self.turns.len())].to_vec(),
            },
        }
    }
}

/// Mouse wheel to scroll lines (up is positive: further from the bottom).
pub fn wheel(kind: MouseEventKind) -> Option<i32> {
    match kind {
        MouseEventKind::ScrollUp => Some(3),
        MouseEventKind::ScrollDown => Some(-3),
        _ => None,
    }
}
