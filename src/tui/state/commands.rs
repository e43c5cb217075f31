//! Carrying out slash commands (parsed in [`crate::tui::slash`]), and what keys share with them:
//! regenerate, undo, the mode and the theme.

use super::{App, Mode, CONTINUATION};
use crate::engine::chat::Role;
use crate::engine::Request;
use crate::tui::controls;
use crate::tui::slash::{self, Command};

impl App {
    /// Removes the last turn if it is the model's, with its tokens and branches.
    pub(super) fn drop_last_reply(&mut self) {
        if self.turns.last().is_some_and(|t| t.role == Role::Model) {
            self.turns.pop();
            self.forget_reply(self.turns.len());
        }
    }

    pub(super) fn regenerate(&mut self) -> Vec<Request> {
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
    pub(super) fn edit_document(&mut self) {
        let document = std::mem::take(&mut self.document);
        self.input = document + &self.input;
        self.cursor = self.input.len();
        self.continuation_start = None;
        self.forget_reply(CONTINUATION);
    }

    pub(super) fn set_mode(&mut self, mode: Mode) {
        self.mode = mode;
        self.inspect = None;
        self.message = Some(match mode {
            Mode::Chat => "chat mode".into(),
            Mode::Complete => {
                "completion mode: Enter continues the document, Ctrl+E edits it".into()
            }
        });
    }

    pub(super) fn cycle_theme(&mut self) {
        let names: Vec<&String> = self.themes.keys().collect();
        let at = names
            .iter()
            .position(|n| **n == self.theme.name)
            .unwrap_or(0);
        let next = names[(at + 1) % names.len()].clone();
        self.theme = self.themes[&next].clone();
        self.message = Some(format!("theme {next}"));
    }

    /// Carries out the slash command `line` (the text after the `/`).
    pub(super) fn command(&mut self, line: &str) -> Vec<Request> {
        let command = match slash::parse(line) {
            Ok(command) => command,
            Err(e) => {
                self.message = Some(e);
                return vec![];
            }
        };
        let result: Result<Option<String>, String> = match command {
            Command::Set { name, value } => match controls::set(&mut self.params, &name, &value) {
                Ok(()) => {
                    self.message = Some(format!("{name} = {value}"));
                    return self.params_changed();
                }
                Err(e) => Err(e),
            },
            Command::ChatMode => {
                self.set_mode(Mode::Chat);
                Ok(None)
            }
            Command::CompleteMode => {
                self.set_mode(Mode::Complete);
                Ok(None)
            }
            Command::Format { format, name } => {
                self.format = format;
                Ok(Some(format!("format {name}")))
            }
            Command::System(text) => {
                let message = if text.is_empty() {
                    "system text cleared"
                } else {
                    "system text set"
                };
                self.system = text;
                Ok(Some(message.into()))
            }
            Command::Regenerate => return self.regenerate(),
            Command::Undo => {
                if self.is_generating() {
                    Err("stop the generation first (Esc)".into())
                } else {
                    self.undo();
                    Ok(None)
                }
            }
            Command::Clear => {
                if self.is_generating() {
                    Err("stop the generation first (Esc)".into())
                } else {
                    self.queued = false;
                    self.turns.clear();
                    self.replies.clear();
                    self.inspect = None;
                    self.document.clear();
                    self.continuation_start = None;
                    self.stats.dropped_turns = 0;
                    self.stats.dropped_tokens = 0;
                    self.stats.context_shifts = 0;
                    self.scroll_top = None;
                    Ok(Some("cleared".into()))
                }
            }
            Command::Save(path) => self.save(&path).map(Some),
            Command::Load(path) => self.load(&path).map(Some),
            Command::Export(path) => self.export(&path).map(Some),
            Command::Theme(name) => match self.themes.get(&name) {
                Some(theme) => {
                    self.theme = theme.clone();
                    Ok(Some(format!("theme {name}")))
                }
                None => Err(format!(
                    "no theme \"{name}\" (have: {})",
                    self.themes.keys().cloned().collect::<Vec<_>>().join(", ")
                )),
            },
            Command::Help => {
                self.overlay.show_help = true;
                Ok(None)
            }
            Command::Probs => {
                self.show_probs = !self.show_probs;
                Ok(Some(format!(
                    "probability colours {}",
                    if self.show_probs { "on" } else { "off" }
                )))
            }
            Command::Tokens => {
                self.token_view = (self.token_view + 1) % 3;
                Ok(None)
            }
            Command::Anatomy => {
                self.overlay.show_anatomy = true;
                Ok(None)
            }
            Command::Inspect => {
                self.start_inspecting();
                Ok(None)
            }
            Command::Quit => {
                self.quit = true;
                return if self.is_generating() {
                    vec![Request::Cancel]
                } else {
                    vec![]
                };
            }
        };
        match result {
            Ok(Some(message)) => self.message = Some(message),
            Ok(None) => {}
            Err(e) => self.message = Some(e),
        }
        vec![]
    }

    pub(super) fn undo(&mut self) {
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
}
