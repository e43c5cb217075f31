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
            When::InputEmpty => self.input.text.is_empty(),
            When::CompleteIdle => self.conversation.mode == Mode::Complete && !self.is_generating(),
            When::Choosing => inspect.is_some_and(|i| i.choosing.is_some()),
            When::AttentionOpen => inspect.is_some_and(|i| i.attention.is_some()),
            When::HasAlternatives => self
                .inspected()
                .is_some_and(|(_, _, piece)| !piece.top.is_empty()),
            When::Editing => self.messages.editing.is_some(),
            When::Searching => self.input.is_searching(),
        }
    }

    /// Finds what the key does where the interface is: the help overlay and the sessions
    /// picker take every key, any key closes the anatomy or answers `/delete`'s question; then the token cursor, the global keys, and the focused part.
    pub(super) fn on_key(&mut self, key: KeyEvent) -> Vec<Request> {
        if self.overlay.show_help {
            let action = keys::lookup(Scope::Help, &key, |when| self.holds(when));
            self.overlay.on_help_key(action);
            return vec![];
        }
        if self.overlay.show_anatomy {
            self.overlay.show_anatomy = false;
            return vec![];
        }
        if self.overlay.sessions.is_some() {
            self.on_picker_key(&key);
            return vec![];
        }
        if self.sessions.delete_armed {
            self.on_delete_answer(&key);
            return vec![];
        }
        let inspecting = self.inspect.is_some();
        let mut scopes = vec![];
        if inspecting {
            scopes.extend([Scope::Inspect, Scope::Global]);
        } else if self.messages.selected.is_some() {
            scopes.extend([Scope::Messages, Scope::Global]);
        } else {
            scopes.extend([Scope::Global, Scope::Focus]);
            scopes.push(match self.panes.focus {
                Focus::Panel => Scope::Panel,
                Focus::Input => Scope::Input,
            });
        }
        // While the cursor is shown, keys it does not use neither type nor move the focus.
        let found = scopes
            .into_iter()
            .find_map(|scope| keys::lookup(scope, &key, |when| self.holds(when)));
        let requests = match found {
            Some(action) => self.act(action, &key),
            None => vec![],
        };
        if let Some(line) = self.input.search_line() {
            self.message = Some(line);
        } else if matches!(
            found,
            Some(KeyAction::AcceptSearch | KeyAction::CancelSearch)
        ) {
            self.message = None;
        }
        requests
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
            KeyAction::ToggleProbs => {
                self.look.toggle_probs();
            }
            KeyAction::CycleTokenView => self.input.cycle_token_view(),
            KeyAction::ToggleAnatomy => self.overlay.show_anatomy = !self.overlay.show_anatomy,
            KeyAction::StartInspecting => self.start_inspecting(),
            KeyAction::ToggleMode => self.set_mode(if self.conversation.mode == Mode::Chat {
                Mode::Complete
            } else {
                Mode::Chat
            }),
            KeyAction::PageUp => self.panes.scroll(self.panes.page() as i64),
            KeyAction::PageDown => self.panes.scroll(-(self.panes.page() as i64)),
            KeyAction::ToggleFocus => self.panes.toggle_focus(),
            KeyAction::PreviousControl => self.panes.step_control(-1),
            KeyAction::NextControl => self.panes.step_control(1),
            KeyAction::Decrease | KeyAction::Increase => {
                let direction = if action == KeyAction::Increase { 1 } else { -1 };
                CONTROLS[self.panes.selected].step(&mut self.params, direction);
                return self.params_changed();
            }
            KeyAction::BackToInput => self.panes.focus = Focus::Input,
            KeyAction::Submit => return self.submit(),
            KeyAction::NewLine => self.input.insert("\n"),
            KeyAction::EditDocument => self.edit_document(),
            KeyAction::Type => {
                if let KeyCode::Char(c) = key.code {
                    self.input.insert(&c.to_string());
                }
            }
            KeyAction::Backspace => self.input.backspace(),
            KeyAction::Delete => self.input.delete(),
            KeyAction::CursorLeft => self.input.left(),
            KeyAction::CursorRight => self.input.right(),
            KeyAction::CursorHome => self.input.home(),
            KeyAction::CursorEnd => self.input.end(),
            KeyAction::HistoryBack => self.input.recall(-1),
            KeyAction::HistoryForward => self.input.recall(1),
            KeyAction::SearchHistory => self.input.search_older(),
            KeyAction::SearchType => {
                if let KeyCode::Char(c) = key.code {
                    self.input.edit_search(Some(c));
                }
            }
            KeyAction::SearchBackspace => self.input.edit_search(None),
            KeyAction::AcceptSearch => self.input.accept_search(),
            KeyAction::CancelSearch => self.input.cancel_search(),
            KeyAction::StartSelecting => self.start_selecting(),
            KeyAction::CancelEdit => self.cancel_edit(),
            KeyAction::OpenEditor => self.open_editor(),
            KeyAction::CopyReply if self.inspect.is_some() => {
                if let Some(key) = self.inspect.as_ref().map(|i| i.reply) {
                    self.copy_turn(key);
                }
            }
            KeyAction::MessageUp
            | KeyAction::MessageDown
            | KeyAction::EditMessage
            | KeyAction::NextVersion
            | KeyAction::PreviousVersion
            | KeyAction::LeaveMessages
            | KeyAction::CopyReply => return self.on_message_action(action),
            // Taken by the help overlay, the picker and the question before the lookup here.
            KeyAction::HelpUp
            | KeyAction::HelpDown
            | KeyAction::HelpPageUp
            | KeyAction::HelpPageDown
            | KeyAction::PickerUp
            | KeyAction::PickerDown
            | KeyAction::PickerOpen
            | KeyAction::PickerDelete
            | KeyAction::PickerClose
            | KeyAction::Yes => {}
            inspect => return self.on_inspect_action(inspect, key),
        }
        vec![]
    }

    pub(super) fn submit(&mut self) -> Vec<Request> {
        if let Some(at) = self.messages.editing {
            return self.submit_edit(at);
        }
        let text = self.input.take();
        if let Some(command) = text.trim_start().strip_prefix('/') {
            return self.command(command.trim());
        }
        let refuse = if self.is_generating() {
            Some("the model is still writing: Esc stops it".to_string())
        } else if let EngineState::Failed(e) = &self.engine.state {
            Some(e.clone())
        } else if self.engine.queued {
            Some("waiting for the model to load; your message is queued".into())
        } else {
            None
        };
        if let Some(why) = refuse {
            self.message = Some(why);
            self.input.set(text);
            return vec![];
        }
        let c = &mut self.conversation;
        match c.mode {
            Mode::Chat => {
                if text.trim().is_empty() {
                    return vec![];
                }
                c.turns.push(Turn {
                    role: Role::User,
                    text,
                });
                self.generate()
            }
            Mode::Complete => {
                c.document.push_str(&text);
                self.generate()
            }
        }
    }
}
