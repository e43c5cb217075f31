//! What keys do: each key is looked up in [`crate::tui::keys`] for the scope the state is in,
//! and the action found is carried out here (the input's editing and the panel's controls).

use crossterm::event::{KeyCode, KeyEvent};

use super::{App, EngineState, Focus, Mode};
use crate::engine::chat::{Role, Turn};
use crate::engine::Request;
use crate::tui::controls::CONTROLS;
use crate::tui::keys::{self, KeyAction, Scope, When};

impl App {
    /// Whether a binding's condition holds now.
    fn holds(&self, when: When) -> bool {
        let inspect = self.inspect.as_ref();
        match when {
            When::Always => true,
            When::Generating => self.is_generating(),
            When::InputEmpty => self.input.is_empty(),
            When::CompleteIdle => self.mode == Mode::Complete && !self.is_generating(),
            When::Choosing => inspect.is_some_and(|i| i.choosing.is_some()),
            When::AttentionOpen => inspect.is_some_and(|i| i.attention.is_some()),
            When::HasAlternatives => self
                .inspected()
                .is_some_and(|(_, _, piece)| !piece.top.is_empty()),
        }
    }

    /// Finds what the key does where the interface is: the help overlay takes every key, any
    /// key closes the anatomy; then the token cursor, the global keys, and the focused part.
    pub(super) fn on_key(&mut self, key: KeyEvent) -> Vec<Request> {
        if self.overlay.show_help {
            // Up/Down/PgUp/PgDn scroll the help; any other key closes it.
            let max = keys::help().len().saturating_sub(1);
            match keys::lookup(Scope::Help, &key, |when| self.holds(when)) {
                Some(KeyAction::HelpUp) => {
                    self.overlay.help_scroll = self.overlay.help_scroll.saturating_sub(1)
                }
                Some(KeyAction::HelpDown) => {
                    self.overlay.help_scroll = (self.overlay.help_scroll + 1).min(max)
                }
                Some(KeyAction::HelpPageUp) => {
                    self.overlay.help_scroll = self.overlay.help_scroll.saturating_sub(10)
                }
                Some(KeyAction::HelpPageDown) => {
                    self.overlay.help_scroll = (self.overlay.help_scroll + 10).min(max)
                }
                _ => {
                    self.overlay.show_help = false;
                    self.overlay.help_scroll = 0;
                }
            }
            return vec![];
        }
        if self.overlay.show_anatomy {
            self.overlay.show_anatomy = false;
            return vec![];
        }
        let inspecting = self.inspect.is_some();
        let mut scopes = vec![];
        if inspecting {
            scopes.extend([Scope::Inspect, Scope::Global]);
        } else {
            scopes.extend([Scope::Global, Scope::Focus]);
            scopes.push(match self.focus {
                Focus::Panel => Scope::Panel,
                Focus::Input => Scope::Input,
            });
        }
        // While the cursor is shown, keys it does not use neither type nor move the focus.
        let found = scopes
            .into_iter()
            .find_map(|scope| keys::lookup(scope, &key, |when| self.holds(when)));
        match found {
            Some(action) => self.act(action, &key),
            None => vec![],
        }
    }

    fn act(&mut self, action: KeyAction, key: &KeyEvent) -> Vec<Request> {
        match action {
            KeyAction::CancelOrQuit => {
                if self.is_generating() {
                    return vec![Request::Cancel];
                }
                self.quit = true;
            }
            KeyAction::Cancel => return vec![Request::Cancel],
            KeyAction::Regenerate => return self.regenerate(),
            KeyAction::NextTheme => self.cycle_theme(),
            KeyAction::ShowHelp => self.overlay.show_help = true,
            KeyAction::ToggleProbs => self.show_probs = !self.show_probs,
            KeyAction::CycleTokenView => self.token_view = (self.token_view + 1) % 3,
            KeyAction::ToggleAnatomy => self.overlay.show_anatomy = !self.overlay.show_anatomy,
            KeyAction::StartInspecting => self.start_inspecting(),
            KeyAction::ToggleMode => self.set_mode(if self.mode == Mode::Chat {
                Mode::Complete
            } else {
                Mode::Chat
            }),
            KeyAction::PageUp => self.scroll(self.page() as i64),
            KeyAction::PageDown => self.scroll(-(self.page() as i64)),
            KeyAction::ToggleFocus => {
                self.focus = if self.focus == Focus::Input {
                    Focus::Panel
                } else {
                    Focus::Input
                };
            }
            KeyAction::PreviousControl => {
                self.selected = (self.selected + CONTROLS.len() - 1) % CONTROLS.len()
            }
            KeyAction::NextControl => self.selected = (self.selected + 1) % CONTROLS.len(),
            KeyAction::Decrease | KeyAction::Increase => {
                let direction = if action == KeyAction::Increase { 1 } else { -1 };
                CONTROLS[self.selected].step(&mut self.params, direction);
                return self.params_changed();
            }
            KeyAction::BackToInput => self.focus = Focus::Input,
            KeyAction::Submit => return self.submit(),
            KeyAction::NewLine => self.insert("\n"),
            KeyAction::EditDocument => self.edit_document(),
            KeyAction::Type => {
                if let KeyCode::Char(c) = key.code {
                    self.insert(&c.to_string());
                }
            }
            KeyAction::Backspace => {
                if let Some(c) = self.input[..self.cursor].chars().next_back() {
                    self.cursor -= c.len_utf8();
                    self.input.remove(self.cursor);
                }
            }
            KeyAction::Delete => {
                if self.cursor < self.input.len() {
                    self.input.remove(self.cursor);
                }
            }
            KeyAction::CursorLeft => {
                if let Some(c) = self.input[..self.cursor].chars().next_back() {
                    self.cursor -= c.len_utf8();
                }
            }
            KeyAction::CursorRight => {
                if let Some(c) = self.input[self.cursor..].chars().next() {
                    self.cursor += c.len_utf8();
                }
            }
            KeyAction::CursorHome => self.cursor = 0,
            KeyAction::CursorEnd => self.cursor = self.input.len(),
            KeyAction::HistoryBack => self.recall(-1),
            KeyAction::HistoryForward => self.recall(1),
            KeyAction::HelpUp
            | KeyAction::HelpDown
            | KeyAction::HelpPageUp
            | KeyAction::HelpPageDown => {}
            inspect => return self.on_inspect_action(inspect, key),
        }
        vec![]
    }

    pub(super) fn insert(&mut self, text: &str) {
        self.input.insert_str(self.cursor, text);
        self.cursor += text.len();
        self.history_pos = None;
    }

    pub(super) fn recall(&mut self, direction: i32) {
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

    pub(super) fn submit(&mut self) -> Vec<Request> {
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
}
