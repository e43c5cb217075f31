//! The `/sessions` picker: the saved conversations in a list to move through, open or delete
//! (after a `y`), with the files that could not be read named under it. Also the answer to
//! `/delete`'s question, which waits for the next key the same way.

use crossterm::event::KeyEvent;

use super::App;
use crate::sessions::{Problem, Summary};
use crate::tui::keys::{self, KeyAction, Scope, When};

/// The open picker.
#[derive(Debug, Clone)]
pub struct SessionPicker {
    /// Newest first, as `gpt2-tui sessions` lists them.
    pub list: Vec<Summary>,
    /// Files in the folder that could not be read, and why.
    pub problems: Vec<Problem>,
    pub selected: usize,
    /// `d` was pressed: `y` deletes the selected session, any other key keeps it.
    pub confirm_delete: bool,
}

impl SessionPicker {
    fn step(&mut self, by: isize) {
        let last = self.list.len().saturating_sub(1);
        self.selected = self.selected.saturating_add_signed(by).min(last);
    }

    fn selected_id(&self) -> Option<String> {
        self.list.get(self.selected).map(|s| s.id.clone())
    }
}

/// Whether `key` answers yes to a waiting question.
fn is_yes(key: &KeyEvent) -> bool {
    keys::lookup(Scope::Confirm, key, |w| w == When::Always) == Some(KeyAction::Yes)
}

impl App {
    /// `/sessions`: opens the picker on this conversation (saved first, so it is listed).
    pub(super) fn open_session_picker(&mut self) -> Result<String, String> {
        self.save_session_now();
        let store = self.store()?;
        let (list, problems) = store.list()?;
        if list.is_empty() && problems.is_empty() {
            return Ok(format!("no saved sessions in {}", store.dir().display()));
        }
        let selected = list
            .iter()
            .position(|s| s.id == self.sessions.id)
            .unwrap_or(0);
        let text = format!("{} saved conversations", list.len());
        self.overlay.sessions = Some(SessionPicker {
            list,
            problems,
            selected,
            confirm_delete: false,
        });
        Ok(text)
    }

    /// A key while the picker is open: it takes every key.
    pub(super) fn on_picker_key(&mut self, key: &KeyEvent) {
        let Some(picker) = self.overlay.sessions.as_mut() else {
            return;
        };
        if picker.confirm_delete {
            picker.confirm_delete = false;
            let Some(id) = picker.selected_id() else {
                return;
            };
            let result = if is_yes(key) {
                self.delete_listed(&id)
            } else {
                Ok(format!("kept {id}"))
            };
            self.show(result);
            return;
        }
        match keys::lookup(Scope::Sessions, key, |w| w == When::Always) {
            Some(KeyAction::PickerUp) => picker.step(-1),
            Some(KeyAction::PickerDown) => picker.step(1),
            Some(KeyAction::PickerDelete) => picker.confirm_delete = !picker.list.is_empty(),
            Some(KeyAction::PickerOpen) => {
                let id = picker.selected_id();
                self.overlay.sessions = None;
                if let Some(id) = id {
                    let result = self.resume(&id);
                    self.show(result);
                }
            }
            Some(KeyAction::PickerClose) => self.overlay.sessions = None,
            _ => {}
        }
    }

    /// Deletes a listed session (this conversation's own: a fresh one starts) and lists again.
    fn delete_listed(&mut self, id: &str) -> Result<String, String> {
        let result = if *id == self.sessions.id {
            self.delete_current()
        } else {
            self.refuse_while_writing()?;
            self.store()?.delete(id).map(|()| format!("deleted {id}"))
        };
        // Listed again from the folder; an empty list closes the picker.
        let selected = self.overlay.sessions.take().map_or(0, |p| p.selected);
        self.open_session_picker()?;
        if let Some(picker) = self.overlay.sessions.as_mut() {
            picker.selected = selected.min(picker.list.len().saturating_sub(1));
        }
        result
    }

    /// The key after `/delete`'s question: `y` deletes this conversation, any other keeps it.
    pub(super) fn on_delete_answer(&mut self, key: &KeyEvent) {
        self.sessions.delete_armed = false;
        let result = if is_yes(key) {
            self.delete_current()
        } else {
            Ok(format!("kept {}", self.sessions.id))
        };
        self.show(result);
    }

    fn show(&mut self, result: Result<String, String>) {
        self.message = Some(result.unwrap_or_else(|e| e));
    }
}
