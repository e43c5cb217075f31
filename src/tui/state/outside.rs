//! What the state asks of the world beyond the screen, carried out by the event loop: copying
//! to the clipboard (`/copy`, `y`), the input in an editor (Ctrl+G, `/edit`); and `/read FILE`.

use super::{App, Mode, CONTINUATION};
use crate::engine::chat::to_markdown;

/// Files `/read` inserts are at most this big (far more than the model's window holds).
pub const READ_LIMIT: u64 = 256 * 1024;

/// Something for the event loop to do outside the state.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Put this text on the clipboard (OSC 52).
    Copy(String),
    /// Open the editor on this text; the answer comes back as [`super::Action::Edited`].
    Edit(String),
}

impl App {
    /// The text of the reply (or chat turn) under `key`.
    fn text_of(&self, key: usize) -> Option<String> {
        let c = &self.conversation;
        if key == CONTINUATION {
            let start = c.continuation_start?.min(c.document.len());
            return Some(c.document[start..].to_string());
        }
        c.turns.get(key).map(|t| t.text.clone())
    }

    fn copy(&mut self, what: &str, text: String) {
        self.message = Some(format!(
            "copied {what} ({} characters) to the clipboard (OSC 52)",
            text.chars().count()
        ));
        self.effects.push(Effect::Copy(text));
    }

    /// `y` in a cursor: the turn (or reply) under it.
    pub(super) fn copy_turn(&mut self, key: usize) {
        match self.text_of(key) {
            Some(text) => self.copy("the message", text),
            None => self.message = Some("nothing to copy there".into()),
        }
    }

    /// `/copy`: the reply under a cursor, else the last reply; `/copy all`: the whole chat as
    /// Markdown (completion mode: the whole text).
    pub(super) fn copy_command(&mut self, all: bool) -> Result<Option<String>, String> {
        let c = &self.conversation;
        if all {
            let name = self
                .engine
                .model
                .as_ref()
                .map_or("GPT-2", |m| m.name.as_str());
            let text = match c.mode {
                Mode::Chat => to_markdown(name, &c.system, &c.turns),
                Mode::Complete => c.document.clone(),
            };
            self.copy("the conversation", text);
            return Ok(None);
        }
        let under_cursor = self
            .inspect
            .as_ref()
            .map(|i| i.reply)
            .or(self.messages.selected);
        let key = under_cursor.or_else(|| match c.mode {
            Mode::Chat => c
                .turns
                .iter()
                .rposition(|t| t.role == crate::engine::chat::Role::Model),
            Mode::Complete => c.continuation_start.map(|_| CONTINUATION),
        });
        let text = key
            .and_then(|k| self.text_of(k))
            .ok_or("no reply to copy yet")?;
        self.copy("the reply", text);
        Ok(None)
    }

    /// Ctrl+G, `/edit`: the input goes to the editor.
    pub(super) fn open_editor(&mut self) {
        self.effects.push(Effect::Edit(self.input.text.clone()));
    }

    /// The editor closed: its text replaces the input, or the input stays and the status bar
    /// says what went wrong.
    pub(super) fn edited(&mut self, result: Result<String, String>) {
        match result {
            Ok(text) => {
                self.input.set(text);
                self.message = Some("input edited".into());
            }
            Err(e) => self.message = Some(e),
        }
    }

    /// `/read FILE`: the file's text goes into the input at the cursor.
    pub(super) fn read_file(&mut self, path: &str) -> Result<Option<String>, String> {
        if path.is_empty() {
            return Err("usage: /read FILE".into());
        }
        let size = std::fs::metadata(path)
            .map_err(|e| format!("cannot read {path}: {e}"))?
            .len();
        if size > READ_LIMIT {
            return Err(format!(
                "{path} is too large ({size} bytes; /read takes at most {} KiB)",
                READ_LIMIT / 1024
            ));
        }
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            format!(
                "{path} is not UTF-8 text (byte {})",
                e.utf8_error().valid_up_to()
            )
        })?;
        self.input.insert(&text);
        Ok(Some(format!(
            "read {path} ({} characters)",
            text.chars().count()
        )))
    }
}
