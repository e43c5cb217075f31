//! The interface's state and how actions change it. Drawing only reads this; the event loop
//! only turns events into actions and sends the requests `update` returns to the engine.
//!
//! [`App`] is made of parts with one job each (the conversation, the input, the panes, the
//! engine link, the look, ...); what touches only one part is a method of that part, and
//! `App` carries out what crosses them.

use std::collections::BTreeMap;

use crossterm::event::{KeyEvent, MouseEventKind};

mod autosave;
mod commands;
mod conversation;
mod edit;
mod forks;
mod input;
pub mod inspect;
mod key_actions;
mod link;
mod look;
mod outside;
mod overlay;
mod panes;
pub mod replies;
mod saved;
mod search;
mod session_commands;
mod session_picker;
mod stats;
mod transcript;

use crate::engine::chat::ChatFormat;
use crate::engine::{Reply, Request};
use crate::generate::SamplingParams;
use crate::tui::theme::Theme;
pub use autosave::Autosave;
pub use conversation::{Conversation, CursorStop, Mode, CONTINUATION};
pub use edit::Messages;
pub use forks::{Forks, Tail};
pub use input::Input;
use inspect::Inspect;
pub use link::{EngineLink, EngineState, ModelSummary};
pub use look::Look;
pub use outside::{Effect, READ_LIMIT};
pub use overlay::Overlay;
pub use panes::{BodyLayout, Focus, Panes};
use replies::Piece;
pub use session_picker::SessionPicker;
pub use stats::Stats;
pub use transcript::Transcript;

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
    /// The editor opened by [`Effect::Edit`] closed: its text, or why it failed.
    Edited(Result<String, String>),
}

pub struct App {
    /// What has been said: the mode, the turns or the document, each reply's tokens.
    pub conversation: Conversation,
    /// The text being typed, its history and its tokens.
    pub input: Input,
    /// The focus, the selected control and the conversation's scroll position.
    pub panes: Panes,
    /// The sampling settings new replies (and, live, the current one) are drawn with.
    pub params: SamplingParams,
    /// The engine's state and the model it loaded.
    pub engine: EngineLink,
    /// The last reply's figures for the status bar.
    pub stats: Stats,
    /// The token cursor and what it shows, while inspecting a reply.
    pub inspect: Option<Inspect>,
    /// The message cursor, and the turn being edited in the input.
    pub messages: Messages,
    /// What the event loop is to do outside the screen (copy, open the editor), in order.
    pub effects: Vec<Effect>,
    /// The popups over the panes.
    pub overlay: Overlay,
    /// The themes, the one in use, and the probability colours.
    pub look: Look,
    /// The saved session this conversation is kept as.
    pub sessions: Autosave,
    /// The status bar's message.
    pub message: Option<String>,
    /// Set when the interface is to close.
    pub quit: bool,
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
        let (look, message) = Look::new(themes, theme);
        Self {
            conversation: Conversation::new(mode, format, system),
            input: Input::default(),
            panes: Panes::default(),
            params,
            engine: EngineLink::default(),
            stats: Stats::default(),
            inspect: None,
            messages: Messages::default(),
            effects: Vec::new(),
            overlay: Overlay::default(),
            look,
            sessions: Autosave::default(),
            message,
            quit: false,
        }
    }

    pub fn is_generating(&self) -> bool {
        self.engine.is_generating()
    }

    /// Applies one action; returns what to ask of the engine.
    pub fn update(&mut self, action: Action) -> Vec<Request> {
        let may_change = matches!(
            action,
            Action::Key(_) | Action::Reply(_) | Action::Loaded(_) | Action::Edited(_)
        );
        let loaded = matches!(action, Action::Loaded(_));
        let mut requests = self.apply(action);
        if loaded {
            self.check_resumed_model();
        }
        if may_change {
            self.autosave();
        }
        if self.input.changed() {
            self.count_input_tokens();
        }
        if let Some(record) = self.trace_request() {
            // First, so that a reply this action starts is already recorded.
            requests.insert(0, record);
        }
        requests
    }

    /// The sampler trace is recorded while a view that shows it is on (the probability
    /// colours or the token cursor): asks the engine when that changes.
    fn trace_request(&mut self) -> Option<Request> {
        let wanted = self.look.show_probs || self.inspect.is_some();
        if wanted == self.engine.tracing || matches!(self.engine.state, EngineState::Failed(_)) {
            return None;
        }
        self.engine.tracing = wanted;
        Some(Request::RecordTrace(wanted))
    }

    /// Splits the input into tokens again: called only when its text changed (or the tokenizer
    /// arrived), so streamed tokens and redraws never re-tokenize it.
    pub fn count_input_tokens(&mut self) {
        self.input.count_tokens(self.engine.tokenizer.as_deref());
    }

    fn apply(&mut self, action: Action) -> Vec<Request> {
        match action {
            Action::Key(key) => self.on_key(key),
            Action::Paste(text) => {
                self.input
                    .insert(&text.replace("\r\n", "\n").replace('\r', "\n"));
                vec![]
            }
            Action::Scroll(lines) => {
                self.panes.scroll(lines as i64);
                vec![]
            }
            Action::Loaded(summary) => {
                let notes = summary.load_notes.join("; ");
                let requests = match self.engine.loaded(summary) {
                    true => self.generate(),
                    false => vec![],
                };
                // After a waiting message has started (which clears the status bar).
                if !notes.is_empty() {
                    self.message = Some(notes);
                }
                requests
            }
            Action::Reply(reply) => {
                self.on_reply(reply);
                vec![]
            }
            Action::Resize => vec![],
            Action::Edited(result) => {
                self.edited(result);
                vec![]
            }
            Action::Drawn(layout) => {
                self.panes.layout = layout;
                vec![]
            }
            Action::EngineGone => {
                let why = match &self.engine.state {
                    EngineState::Failed(e) => e.clone(),
                    _ => "the engine has stopped; restart gpt2-tui".into(),
                };
                self.engine.state = EngineState::Failed(why.clone());
                self.message = Some(why);
                vec![]
            }
        }
    }

    fn on_reply(&mut self, reply: Reply) {
        match reply {
            Reply::Progress(stage) => self.engine.state = EngineState::Loading(stage),
            Reply::Loaded => {}
            Reply::Started {
                prompt_tokens,
                dropped_turns,
                dropped_tokens,
            } => self
                .stats
                .start(prompt_tokens, dropped_turns, dropped_tokens),
            Reply::ParamsApplied { from_token } => {
                self.message = Some(format!("settings in use from token {from_token}"));
            }
            Reply::ContextShifted(times) => self.stats.context_shifts = times,
            Reply::PromptScored(parts) => self.conversation.set_prompt_parts(parts),
            Reply::Token {
                id,
                text,
                logprob,
                context,
                top,
                params,
                trace,
            } => {
                let c = &mut self.conversation;
                c.append_output(&text);
                let key = c.writing_key();
                c.replies.entry(key).or_default().push_piece(Piece {
                    id,
                    text,
                    prob: logprob.exp(),
                    top,
                    params,
                    trace,
                });
                self.stats.token(context);
            }
            Reply::Finished {
                reason,
                text,
                stats,
            } => {
                let c = &mut self.conversation;
                c.append_output(&text);
                let key = c.writing_key();
                if let Some(reply) = c.replies.get_mut(&key) {
                    reply.push_text(&text);
                }
                self.engine.state = EngineState::Idle;
                self.stats.finish(&stats);
                if reason.is_none() {
                    self.message = Some("stopped".into());
                }
            }
            Reply::Attention { serial, map } => self.on_attention(serial, map),
            Reply::Error(e) => {
                self.engine.state = if self.engine.model.is_none() {
                    EngineState::Failed(e.clone())
                } else {
                    EngineState::Idle
                };
                self.message = Some(e);
            }
        }
    }

    /// Forgets a reply's tokens and branches (the reply is gone or its text was replaced), and
    /// the token cursor on it.
    pub(super) fn forget_reply(&mut self, key: usize) {
        self.conversation.replies.remove(&key);
        if self.inspect.as_ref().is_some_and(|i| i.reply == key) {
            self.inspect = None;
        }
    }

    /// The conversation's wrapped line count and visible height at the last frame.
    pub fn body_metrics(&self) -> (usize, usize) {
        self.panes.body_metrics()
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
        if let EngineState::Failed(e) = &self.engine.state {
            self.message = Some(e.clone());
            return vec![];
        }
        if self.engine.model.is_none() {
            // Answered as soon as the model is ready.
            self.engine.queued = true;
            self.message = Some(
                "the model is still loading: your message will be sent when it is ready".into(),
            );
            return vec![];
        }
        self.start_writing();
        let prompt = match self.conversation.mode {
            Mode::Chat => self
                .conversation
                .prompt_before(self.conversation.turns.len()),
            Mode::Complete => {
                self.conversation.continuation_start = Some(self.conversation.document.len());
                self.forget_reply(CONTINUATION);
                self.conversation.prompt_before(CONTINUATION)
            }
        };
        vec![Request::Generate {
            prompt,
            params: self.params.clone(),
        }]
    }

    /// The state of a reply under way: the view follows it.
    pub(super) fn start_writing(&mut self) {
        self.panes.follow();
        self.message = None;
        self.engine.state = EngineState::Generating;
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
