//! The conversation: the chat's turns or completion mode's document, how they are put to the
//! model, and each model reply's tokens and branches.

use std::collections::BTreeMap;

use super::forks::Forks;
use super::replies::Branches;
use crate::engine::chat::{ChatFormat, Role, Turn};
use crate::engine::{Prompt, PromptPart, PromptToken};

/// The key of completion mode's continuation in [`Conversation::replies`].
pub const CONTINUATION: usize = usize::MAX;

/// Chat or completion mode (kept with the saved sessions, which record it).
pub use crate::sessions::Mode;

/// What has been said, in either mode, and the tokens the model said it with.
#[derive(Debug)]
pub struct Conversation {
    pub mode: Mode,
    pub format: ChatFormat,
    pub system: String,
    pub turns: Vec<Turn>,
    /// Completion mode's text; the model continues it at the end.
    pub document: String,
    /// Where the last continuation began in `document` (for regenerate).
    pub continuation_start: Option<usize>,
    /// Each model reply's tokens (probabilities, alternatives, settings) and its branches, by
    /// turn index; completion mode's last continuation is under [`CONTINUATION`].
    pub replies: BTreeMap<usize, Branches>,
    /// What the model made of the user's own texts, token by token, by turn index; the
    /// document's prompt under [`CONTINUATION`]. Shown only while the text is unchanged.
    pub prompts: BTreeMap<usize, PromptPart>,
    /// The other versions of the chat from a turn on (made by editing that turn), by turn.
    pub forks: BTreeMap<usize, Forks>,
}

/// A place the token cursor can be: a reply's tokens, or the user's text before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CursorStop {
    /// The turn index, or [`CONTINUATION`] in completion mode.
    pub key: usize,
    /// On the user's text (a chat message, the document before the continuation).
    pub prompt: bool,
}

impl Conversation {
    pub fn new(mode: Mode, format: ChatFormat, system: String) -> Self {
        Self {
            mode,
            format,
            system,
            turns: Vec::new(),
            document: String::new(),
            continuation_start: None,
            replies: BTreeMap::new(),
            prompts: BTreeMap::new(),
            forks: BTreeMap::new(),
        }
    }

    /// Keeps the scored texts of a prompt just prefilled (replacing what was known of them).
    pub fn set_prompt_parts(&mut self, parts: Vec<PromptPart>) {
        for part in parts {
            self.prompts.insert(part.turn.unwrap_or(CONTINUATION), part);
        }
    }

    /// The tokens of the user's text under `key`, while that text is still the one scored.
    pub fn prompt_tokens(&self, key: usize) -> Option<&[PromptToken]> {
        let part = self.prompts.get(&key)?;
        let current = match key {
            CONTINUATION if self.mode == Mode::Complete => {
                self.document.get(..self.continuation_at())?
            }
            CONTINUATION => return None,
            turn => match self.turns.get(turn) {
                Some(t) if t.role == Role::User && self.mode == Mode::Chat => t.text.trim(),
                _ => return None,
            },
        };
        (current == part.text && !part.tokens.is_empty()).then_some(part.tokens.as_slice())
    }

    /// Every place the token cursor can be, in the order shown: the user's scored texts and
    /// the model's replies.
    pub fn cursor_stops(&self) -> Vec<CursorStop> {
        let replies = self.inspectable();
        let mut keys: Vec<usize> = self.prompts.keys().chain(&replies).copied().collect();
        keys.sort_unstable();
        keys.dedup();
        let mut stops = Vec::new();
        for key in keys {
            if self.prompt_tokens(key).is_some() {
                stops.push(CursorStop { key, prompt: true });
            }
            if replies.contains(&key) {
                stops.push(CursorStop { key, prompt: false });
            }
        }
        stops
    }

    /// How many tokens the cursor can visit at `stop`.
    pub fn stop_len(&self, stop: CursorStop) -> usize {
        match stop.prompt {
            true => self.prompt_tokens(stop.key).map_or(0, <[_]>::len),
            false => self.replies.get(&stop.key).map_or(0, |r| r.pieces().len()),
        }
    }

    /// Where the reply being written is kept in [`Conversation::replies`].
    pub fn writing_key(&self) -> usize {
        match self.mode {
            Mode::Chat => self.turns.len().saturating_sub(1),
            Mode::Complete => CONTINUATION,
        }
    }

    /// Text the model wrote: onto its turn (started if need be), or the document.
    pub fn append_output(&mut self, text: &str) {
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

    /// Where the continuation begins in the document (its end when there is none).
    fn continuation_at(&self) -> usize {
        self.continuation_start
            .unwrap_or(self.document.len())
            .min(self.document.len())
    }

    /// What the model reads before the reply under `key`: the turns before it, or the
    /// document before the continuation.
    pub fn prompt_before(&self, key: usize) -> Prompt {
        match key {
            CONTINUATION => Prompt::Complete {
                text: self
                    .document
                    .get(..self.continuation_at())
                    .unwrap_or_default()
                    .to_string(),
            },
            turn => Prompt::Chat {
                format: self.format,
                system: self.system.clone(),
                turns: self.turns[..turn.min(self.turns.len())].to_vec(),
            },
        }
    }

    /// The keys of the replies the token cursor can visit in this mode, in order.
    pub fn inspectable(&self) -> Vec<usize> {
        self.replies
            .iter()
            .filter(|(key, reply)| {
                let in_mode = match self.mode {
                    Mode::Chat => self.turns.get(**key).is_some_and(|t| t.role == Role::Model),
                    Mode::Complete => **key == CONTINUATION,
                };
                in_mode && !reply.pieces().is_empty()
            })
            .map(|(key, _)| *key)
            .collect()
    }

    /// Whether the reply under `key` is the last one (only it can branch: later turns answer
    /// it).
    pub fn is_last_reply(&self, key: usize) -> bool {
        key == CONTINUATION || Some(key) == self.turns.len().checked_sub(1)
    }

    /// Puts the shown branch's text where the reply is read from (the turn, or the document).
    pub fn show_branch(&mut self, key: usize) {
        let Some(text) = self.replies.get(&key).map(|r| r.current().text.clone()) else {
            return;
        };
        if key == CONTINUATION {
            let start = self.continuation_at();
            self.document.truncate(start);
            self.document.push_str(&text);
        } else if let Some(turn) = self.turns.get_mut(key) {
            turn.text = text;
        }
    }
}
