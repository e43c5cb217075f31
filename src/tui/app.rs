//! The interface's state and how actions change it. Drawing only reads this; the event loop
//! only turns events into actions and sends the requests `update` returns to the engine.

use std::collections::BTreeMap;
use std::time::Instant;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseEventKind};
use serde::{Deserialize, Serialize};

use super::controls::{self, CONTROLS};
use super::inspect_mode::Inspect;
use super::replies::{Branches, Piece};
use super::theme::Theme;
use crate::engine::chat::{to_markdown, ChatFormat, Role, Turn};
use crate::engine::{ModelInfo, Prompt, Reply, Request};
use crate::generate::SamplingParams;

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

/// A saved session: the conversation and the settings it was made with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Transcript {
    pub model: String,
    pub mode: Mode,
    pub format: ChatFormat,
    pub system: String,
    pub turns: Vec<Turn>,
    #[serde(default)]
    pub document: String,
    pub settings: SamplingParams,
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
    pub model: Option<ModelSummary>,
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
    /// A message sent while the model was loading, to be answered once it is ready.
    pub queued: bool,
    pub message: Option<String>,
    pub show_help: bool,
    /// Lines the help overlay is scrolled down (it can be taller than a small terminal).
    pub help_scroll: usize,
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
    pub show_anatomy: bool,
    pub tokenizer: Option<std::sync::Arc<crate::tokenizer::Tokenizer>>,
    pub anatomy: Option<crate::engine::inspect::Anatomy>,
    generation_started: Option<Instant>,
    generated: usize,
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
            model: None,
            tokens_per_s: 0.0,
            context_used: 0,
            dropped_turns: 0,
            dropped_tokens: 0,
            context_shifts: 0,
            prefill: None,
            queued: false,
            message,
            show_help: false,
            help_scroll: 0,
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
            show_anatomy: false,
            tokenizer: None,
            anatomy: None,
            generation_started: None,
            generated: 0,
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
                self.context_used = prompt_tokens;
                self.dropped_turns = dropped_turns;
                self.dropped_tokens = dropped_tokens;
                self.context_shifts = 0;
                self.generation_started = Some(Instant::now());
                self.generated = 0;
            }
            Reply::ParamsApplied { from_token } => {
                self.message = Some(format!("settings in use from token {from_token}"));
            }
            Reply::ContextShifted(times) => self.context_shifts = times,
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
                self.generated += 1;
                self.context_used = context;
                if let Some(started) = self.generation_started {
                    let seconds = started.elapsed().as_secs_f64();
                    if seconds > 0.0 {
                        self.tokens_per_s = self.generated as f64 / seconds;
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
                self.prefill = Some((stats.prefill_tokens, stats.prompt_tokens));
                if stats.generated_tokens > 1 {
                    self.tokens_per_s = stats.decode_tokens_per_s();
                }
                self.context_shifts = self.context_shifts.max(stats.context_shifts);
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

    fn on_key(&mut self, key: KeyEvent) -> Vec<Request> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        if self.show_help {
            // Up/Down/PgUp/PgDn scroll the help; any other key closes it.
            let max = super::keys::HELP.len().saturating_sub(1);
            match key.code {
                KeyCode::Up => self.help_scroll = self.help_scroll.saturating_sub(1),
                KeyCode::Down => self.help_scroll = (self.help_scroll + 1).min(max),
                KeyCode::PageUp => self.help_scroll = self.help_scroll.saturating_sub(10),
                KeyCode::PageDown => self.help_scroll = (self.help_scroll + 10).min(max),
                _ => {
                    self.show_help = false;
                    self.help_scroll = 0;
                }
            }
            return vec![];
        }
        if self.show_anatomy {
            self.show_anatomy = false;
            return vec![];
        }
        if self.inspect.is_some() {
            if let Some(requests) = self.on_inspect_key(key) {
                return requests;
            }
        }
        match key.code {
            KeyCode::Char('c') if ctrl => {
                if self.is_generating() {
                    return vec![Request::Cancel];
                }
                self.quit = true;
                return vec![];
            }
            KeyCode::Esc if self.is_generating() => return vec![Request::Cancel],
            KeyCode::Char('r') if ctrl => return self.regenerate(),
            KeyCode::Char('t') if ctrl => {
                self.cycle_theme();
                return vec![];
            }
            KeyCode::F(1) => {
                self.show_help = true;
                return vec![];
            }
            KeyCode::F(3) => {
                self.show_probs = !self.show_probs;
                return vec![];
            }
            KeyCode::F(4) => {
                self.token_view = (self.token_view + 1) % 3;
                return vec![];
            }
            KeyCode::F(5) => {
                self.show_anatomy = !self.show_anatomy;
                return vec![];
            }
            KeyCode::F(6) => {
                self.start_inspecting();
                return vec![];
            }
            KeyCode::F(2) => {
                self.set_mode(if self.mode == Mode::Chat {
                    Mode::Complete
                } else {
                    Mode::Chat
                });
                return vec![];
            }
            KeyCode::PageUp => {
                self.scroll(self.page() as i64);
                return vec![];
            }
            KeyCode::PageDown => {
                self.scroll(-(self.page() as i64));
                return vec![];
            }
            _ if self.inspect.is_some() => return vec![],
            KeyCode::Tab | KeyCode::BackTab => {
                self.focus = if self.focus == Focus::Input {
                    Focus::Panel
                } else {
                    Focus::Input
                };
                return vec![];
            }
            _ => {}
        }
        if self.focus == Focus::Panel {
            return self.on_panel_key(key);
        }
        match key.code {
            KeyCode::Enter if alt || key.modifiers.contains(KeyModifiers::SHIFT) => {
                self.insert("\n")
            }
            KeyCode::Char('j') if ctrl => self.insert("\n"),
            KeyCode::Char('e') if ctrl && self.mode == Mode::Complete && !self.is_generating() => {
                self.edit_document()
            }
            KeyCode::Enter => return self.submit(),
            KeyCode::Char('?') if self.input.is_empty() => self.show_help = true,
            KeyCode::Char(c) if !ctrl => self.insert(&c.to_string()),
            KeyCode::Backspace => {
                if let Some(c) = self.input[..self.cursor].chars().next_back() {
                    self.cursor -= c.len_utf8();
                    self.input.remove(self.cursor);
                }
            }
            KeyCode::Delete if self.cursor < self.input.len() => {
                self.input.remove(self.cursor);
            }
            KeyCode::Left => {
                if let Some(c) = self.input[..self.cursor].chars().next_back() {
                    self.cursor -= c.len_utf8();
                }
            }
            KeyCode::Right => {
                if let Some(c) = self.input[self.cursor..].chars().next() {
                    self.cursor += c.len_utf8();
                }
            }
            KeyCode::Home => self.cursor = 0,
            KeyCode::End => self.cursor = self.input.len(),
            KeyCode::Up => self.recall(-1),
            KeyCode::Down => self.recall(1),
            _ => {}
        }
        vec![]
    }

    fn on_panel_key(&mut self, key: KeyEvent) -> Vec<Request> {
        let direction = match key.code {
            KeyCode::Up => {
                self.selected = (self.selected + CONTROLS.len() - 1) % CONTROLS.len();
                0
            }
            KeyCode::Down => {
                self.selected = (self.selected + 1) % CONTROLS.len();
                0
            }
            KeyCode::Left | KeyCode::Char('-') => -1,
            KeyCode::Right | KeyCode::Char('+') | KeyCode::Char('=') => 1,
            KeyCode::Esc | KeyCode::Enter => {
                self.focus = Focus::Input;
                0
            }
            _ => 0,
        };
        if direction == 0 {
            return vec![];
        }
        CONTROLS[self.selected].step(&mut self.params, direction);
        self.params_changed()
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
    fn page(&self) -> usize {
        self.body_metrics().1.saturating_sub(1).max(1)
    }

    /// The conversation's wrapped line count and visible height at the last frame.
    pub fn body_metrics(&self) -> (usize, usize) {
        (self.layout.lines, self.layout.height)
    }

    /// A live change reaches a running generation at its next token.
    fn params_changed(&self) -> Vec<Request> {
        if self.is_generating() {
            vec![Request::SetParams(self.params.clone())]
        } else {
            vec![]
        }
    }

    fn insert(&mut self, text: &str) {
        self.input.insert_str(self.cursor, text);
        self.cursor += text.len();
        self.history_pos = None;
    }

    fn recall(&mut self, direction: i32) {
        if self.history.is_empty() || self.input.contains('\n') {
            return;
        }
        let next = match (self.history_pos, direction) {
            (None, -1) => Some(self.history.len() - 1),
            (None, _) => None,
            (Some(0), -1) => Some(0),
            (Some(i), -1) => Some(i - 1),
            (Some(i), _) if i + 1 < self.history.len() => Some(i + 1),
            (Some(_), _) => None,
        };
        self.history_pos = next;
        self.input = next.map(|i| self.history[i].clone()).unwrap_or_default();
        self.cursor = self.input.len();
    }

    fn submit(&mut self) -> Vec<Request> {
        let text = std::mem::take(&mut self.input);
        self.cursor = 0;
        self.history_pos = None;
        if !text.trim().is_empty() && self.history.last() != Some(&text) {
            self.history.push(text.clone());
        }
        if let Some(command) = text.trim_start().strip_prefix('/') {
            return self.command(command.trim());
        }
        let refuse = if self.is_generating() {
            Some("the model is still writing: Esc stops it".to_string())
        } else if let EngineState::Failed(e) = &self.engine {
            Some(e.clone())
        } else if self.queued {
            Some("waiting for the model to load; your message is queued".into())
        } else {
            None
        };
        if let Some(why) = refuse {
            self.message = Some(why);
            self.input = text;
            self.cursor = self.input.len();
            return vec![];
        }
        match self.mode {
            Mode::Chat => {
                if text.trim().is_empty() {
                    return vec![];
                }
                self.turns.push(Turn {
                    role: Role::User,
                    text,
                });
                self.generate()
            }
            Mode::Complete => {
                self.document.push_str(&text);
                self.generate()
            }
        }
    }

    fn generate(&mut self) -> Vec<Request> {
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

    /// Removes the last turn if it is the model's, with its tokens and branches.
    fn drop_last_reply(&mut self) {
        if self.turns.last().is_some_and(|t| t.role == Role::Model) {
            self.turns.pop();
            self.forget_reply(self.turns.len());
        }
    }

    fn regenerate(&mut self) -> Vec<Request> {
        if self.is_generating() {
            return vec![];
        }
        match self.mode {
            Mode::Chat => {
                self.drop_last_reply();
                if self.turns.last().is_some_and(|t| t.role == Role::User) {
                    return self.generate();
                }
                self.message = Some("nothing to regenerate".into());
                vec![]
            }
            Mode::Complete => match self.continuation_start.take() {
                Some(start) if start <= self.document.len() => {
                    self.document.truncate(start);
                    self.forget_reply(CONTINUATION);
                    self.generate()
                }
                _ => {
                    self.message = Some("nothing to regenerate".into());
                    vec![]
                }
            },
        }
    }

    /// Completion mode: moves the whole document into the input to edit it; Enter then
    /// continues from the edited text.
    fn edit_document(&mut self) {
        let document = std::mem::take(&mut self.document);
        self.input = document + &self.input;
        self.cursor = self.input.len();
        self.continuation_start = None;
        self.forget_reply(CONTINUATION);
    }

    fn set_mode(&mut self, mode: Mode) {
        self.mode = mode;
        self.inspect = None;
        self.message = Some(match mode {
            Mode::Chat => "chat mode".into(),
            Mode::Complete => {
                "completion mode: Enter continues the document, Ctrl+E edits it".into()
            }
        });
    }

    fn cycle_theme(&mut self) {
        let names: Vec<&String> = self.themes.keys().collect();
        let at = names
            .iter()
            .position(|n| **n == self.theme.name)
            .unwrap_or(0);
        let next = names[(at + 1) % names.len()].clone();
        self.theme = self.themes[&next].clone();
        self.message = Some(format!("theme {next}"));
    }

    fn command(&mut self, line: &str) -> Vec<Request> {
        let (name, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.trim();
        let result: Result<Option<String>, String> = match name {
            "set" => {
                let mut parts = rest.split_whitespace();
                match (parts.next(), parts.next()) {
                    (Some(key), Some(value)) => match controls::set(&mut self.params, key, value) {
                        Ok(()) => {
                            self.message = Some(format!("{key} = {value}"));
                            return self.params_changed();
                        }
                        Err(e) => Err(e),
                    },
                    _ => Err("usage: /set NAME VALUE".into()),
                }
            }
            "mode" => match rest {
                "chat" => {
                    self.set_mode(Mode::Chat);
                    Ok(None)
                }
                "complete" | "completion" => {
                    self.set_mode(Mode::Complete);
                    Ok(None)
                }
                _ => Err("usage: /mode chat|complete".into()),
            },
            "format" => match rest {
                "dialogpt" | "transcript" => {
                    self.format = ChatFormat::choose(rest, "");
                    Ok(Some(format!("format {rest}")))
                }
                _ => Err("usage: /format dialogpt|transcript".into()),
            },
            "system" => {
                self.system = rest.to_string();
                Ok(Some(if rest.is_empty() {
                    "system text cleared".into()
                } else {
                    "system text set".into()
                }))
            }
            "regen" => return self.regenerate(),
            "undo" => {
                if self.is_generating() {
                    Err("stop the generation first (Esc)".into())
                } else {
                    self.undo();
                    Ok(None)
                }
            }
            "clear" => {
                if self.is_generating() {
                    Err("stop the generation first (Esc)".into())
                } else {
                    self.queued = false;
                    self.turns.clear();
                    self.replies.clear();
                    self.inspect = None;
                    self.document.clear();
                    self.continuation_start = None;
                    self.dropped_turns = 0;
                    self.dropped_tokens = 0;
                    self.context_shifts = 0;
                    self.scroll_top = None;
                    Ok(Some("cleared".into()))
                }
            }
            "save" => self.save(rest).map(Some),
            "load" => self.load(rest).map(Some),
            "export" => self.export(rest).map(Some),
            "theme" => match self.themes.get(rest) {
                Some(theme) => {
                    self.theme = theme.clone();
                    Ok(Some(format!("theme {rest}")))
                }
                None => Err(format!(
                    "no theme \"{rest}\" (have: {})",
                    self.themes.keys().cloned().collect::<Vec<_>>().join(", ")
                )),
            },
            "help" => {
                self.show_help = true;
                Ok(None)
            }
            "probs" => {
                self.show_probs = !self.show_probs;
                Ok(Some(format!(
                    "probability colours {}",
                    if self.show_probs { "on" } else { "off" }
                )))
            }
            "tokens" => {
                self.token_view = (self.token_view + 1) % 3;
                Ok(None)
            }
            "anatomy" => {
                self.show_anatomy = true;
                Ok(None)
            }
            "inspect" => {
                self.start_inspecting();
                Ok(None)
            }
            "quit" | "exit" => {
                self.quit = true;
                return if self.is_generating() {
                    vec![Request::Cancel]
                } else {
                    vec![]
                };
            }
            other => Err(format!("unknown command /{other} (F1 lists them)")),
        };
        match result {
            Ok(Some(message)) => self.message = Some(message),
            Ok(None) => {}
            Err(e) => self.message = Some(e),
        }
        vec![]
    }

    fn undo(&mut self) {
        self.queued = false;
        match self.mode {
            Mode::Chat => {
                self.drop_last_reply();
                if self.turns.last().is_some_and(|t| t.role == Role::User) {
                    if let Some(turn) = self.turns.pop() {
                        self.input = turn.text;
                        self.cursor = self.input.len();
                    }
                }
            }
            Mode::Complete => {
                if let Some(start) = self.continuation_start.take() {
                    self.document.truncate(start.min(self.document.len()));
                }
                self.forget_reply(CONTINUATION);
            }
        }
    }

    pub fn transcript(&self) -> Transcript {
        Transcript {
            model: self
                .model
                .as_ref()
                .map(|m| m.name.clone())
                .unwrap_or_default(),
            mode: self.mode,
            format: self.format,
            system: self.system.clone(),
            turns: self.turns.clone(),
            document: self.document.clone(),
            settings: self.params.clone(),
        }
    }

    fn save(&self, path: &str) -> Result<String, String> {
        if path.is_empty() {
            return Err("usage: /save PATH".into());
        }
        let json = serde_json::to_string_pretty(&self.transcript()).expect("plain data");
        std::fs::write(path, json).map_err(|e| format!("cannot write {path}: {e}"))?;
        Ok(format!("saved to {path}"))
    }

    fn load(&mut self, path: &str) -> Result<String, String> {
        if self.is_generating() {
            return Err("stop the generation first (Esc)".into());
        }
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        let t: Transcript = serde_json::from_str(&text)
            .map_err(|e| format!("{path}: not a gpt2-tui transcript: {e}"))?;
        t.settings.validate().map_err(|e| format!("{path}: {e}"))?;
        self.mode = t.mode;
        self.format = t.format;
        self.system = t.system;
        self.turns = t.turns;
        self.replies.clear();
        self.inspect = None;
        self.document = t.document;
        self.params = t.settings;
        self.continuation_start = None;
        Ok(format!("loaded {path}"))
    }

    fn export(&self, path: &str) -> Result<String, String> {
        if path.is_empty() {
            return Err("usage: /export PATH".into());
        }
        let name = self
            .model
            .as_ref()
            .map(|m| m.name.as_str())
            .unwrap_or("GPT-2");
        let text = match self.mode {
            Mode::Chat => to_markdown(name, &self.system, &self.turns),
            Mode::Complete => format!("# Text continued by {name}\n\n{}\n", self.document),
        };
        std::fs::write(path, text).map_err(|e| format!("cannot write {path}: {e}"))?;
        Ok(format!("exported to {path}"))
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
