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
        let turns = &mut self.conversation.turns;
        if turns.last().is_some_and(|t| t.role == Role::Model) {
            turns.pop();
            let key = turns.len();
            self.forget_reply(key);
        }
    }

    pub(super) fn regenerate(&mut self) -> Vec<Request> {
        if self.is_generating() {
            return vec![];
        }
        match self.conversation.mode {
            Mode::Chat => {
                self.drop_last_reply();
                let turns = &self.conversation.turns;
                if turns.last().is_some_and(|t| t.role == Role::User) {
                    return self.generate();
                }
                self.message = Some("nothing to regenerate".into());
                vec![]
            }
            Mode::Complete => match self.conversation.continuation_start.take() {
                Some(start) if start <= self.conversation.document.len() => {
                    self.conversation.document.truncate(start);
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
        let document = std::mem::take(&mut self.conversation.document);
        let text = document + &self.input.text;
        self.input.set(text);
        self.conversation.continuation_start = None;
        self.forget_reply(CONTINUATION);
    }

    pub(super) fn set_mode(&mut self, mode: Mode) {
        self.conversation.mode = mode;
        self.inspect = None;
        self.message = Some(match mode {
            Mode::Chat => "chat mode".into(),
            Mode::Complete => {
                "completion mode: Enter continues the document, Ctrl+E edits it".into()
            }
        });
    }

    pub(super) fn cycle_theme(&mut self) {
        let next = self.look.next_theme();
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
                self.conversation.format = format;
                Ok(Some(format!("format {name}")))
            }
            Command::System(text) => {
                let message = if text.is_empty() {
                    "system text cleared"
                } else {
                    "system text set"
                };
                self.conversation.system = text;
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
                    self.clear();
                    Ok(Some("cleared".into()))
                }
            }
            Command::Save(path) => self.save(&path).map(Some),
            Command::Load(path) => self.load(&path).map(Some),
            Command::Export(path) => self.export(&path).map(Some),
            Command::Theme(name) => self
                .look
                .set_theme(&name)
                .map(|()| Some(format!("theme {name}"))),
            Command::Help => {
                self.overlay.show_help = true;
                Ok(None)
            }
            Command::Probs => {
                let on = self.look.toggle_probs();
                Ok(Some(format!(
                    "probability colours {}",
                    if on { "on" } else { "off" }
                )))
            }
            Command::Tokens => {
                self.input.cycle_token_view();
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

    /// Forgets the conversation (the settings and the input stay).
    fn clear(&mut self) {
        self.engine.queued = false;
        let c = &mut self.conversation;
        c.turns.clear();
        c.replies.clear();
        c.document.clear();
        c.continuation_start = None;
        self.inspect = None;
        self.stats.clear_dropped();
        self.panes.follow();
    }

    pub(super) fn undo(&mut self) {
        self.engine.queued = false;
        match self.conversation.mode {
            Mode::Chat => {
                self.drop_last_reply();
                let turns = &mut self.conversation.turns;
                if turns.last().is_some_and(|t| t.role == Role::User) {
                    if let Some(turn) = turns.pop() {
                        self.input.set(turn.text);
                    }
                }
            }
            Mode::Complete => {
                let c = &mut self.conversation;
                if let Some(start) = c.continuation_start.take() {
                    c.document.truncate(start.min(c.document.len()));
                }
                self.forget_reply(CONTINUATION);
            }
        }
    }
}
