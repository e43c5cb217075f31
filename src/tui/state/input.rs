//! The text being typed: its editing, the history of sent lines, and its tokens as counted for
//! the input's title and shown by the tokenizer view.

use crate::engine::inspect::{token_rows, TokenRow};
use crate::tokenizer::Tokenizer;

/// The input box's text, cursor and history, and the tokens it splits into.
#[derive(Debug, Default)]
pub struct Input {
    pub text: String,
    /// Cursor position in `text`, in bytes.
    pub cursor: usize,
    pub history: Vec<String>,
    history_pos: Option<usize>,
    /// The input split into tokens: 0 off, 1 tokens, 2 tokens with ids.
    pub token_view: u8,
    /// Tokens in the input, counted as you type.
    pub tokens: usize,
    /// The input split into tokens (for the tokenizer view).
    pub rows: Vec<TokenRow>,
    /// The text `rows` were made from.
    tokenized: String,
    /// The Ctrl+R search under way ([`super::search`]).
    pub(super) search: Option<super::search::HistorySearch>,
}

impl Input {
    pub fn insert(&mut self, text: &str) {
        self.text.insert_str(self.cursor, text);
        self.cursor += text.len();
        self.history_pos = None;
    }

    /// Replaces the text, with the cursor at its end.
    pub fn set(&mut self, text: String) {
        self.text = text;
        self.cursor = self.text.len();
    }

    /// Empties the input for sending, keeping the text in the history; returns it.
    pub fn take(&mut self) -> String {
        let text = std::mem::take(&mut self.text);
        self.cursor = 0;
        self.history_pos = None;
        if !text.trim().is_empty() && self.history.last() != Some(&text) {
            self.history.push(text.clone());
        }
        text
    }

    pub fn backspace(&mut self) {
        if let Some(c) = self.text[..self.cursor].chars().next_back() {
            self.cursor -= c.len_utf8();
            self.text.remove(self.cursor);
        }
    }

    pub fn delete(&mut self) {
        if self.cursor < self.text.len() {
            self.text.remove(self.cursor);
        }
    }

    pub fn left(&mut self) {
        if let Some(c) = self.text[..self.cursor].chars().next_back() {
            self.cursor -= c.len_utf8();
        }
    }

    pub fn right(&mut self) {
        if let Some(c) = self.text[self.cursor..].chars().next() {
            self.cursor += c.len_utf8();
        }
    }

    pub fn home(&mut self) {
        self.cursor = 0;
    }

    pub fn end(&mut self) {
        self.cursor = self.text.len();
    }

    /// Steps back (`-1`) or forward through the lines sent before; past the newest, empty.
    pub fn recall(&mut self, direction: i32) {
        if self.history.is_empty() || self.text.contains('\n') {
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
        let text = next.map(|i| self.history[i].clone()).unwrap_or_default();
        self.set(text);
    }

    /// Off, tokens, tokens with ids, off again.
    pub fn cycle_token_view(&mut self) {
        self.token_view = (self.token_view + 1) % 3;
    }

    /// Whether the text changed since it was last split into tokens.
    pub fn changed(&self) -> bool {
        self.text != self.tokenized
    }

    /// Splits the text into tokens again: called only when it changed (or the tokenizer
    /// arrived), so streamed tokens and redraws never re-tokenize it.
    pub fn count_tokens(&mut self, tokenizer: Option<&Tokenizer>) {
        self.rows = match tokenizer {
            Some(t) => token_rows(t, &self.text).unwrap_or_default(),
            None => Vec::new(),
        };
        self.tokens = self.rows.len();
        self.tokenized.clone_from(&self.text);
    }
}
