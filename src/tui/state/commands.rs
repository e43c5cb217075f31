//! Carrying out slash commands (parsed in [`crate::tui::slash`]), and what keys share with them:
//! regenerate, undo, the mode and the theme.

use super::{App, Mode, CONTINUATION};
use crate::engine::chat::Role;
use crate::engine::Request;
use crate::tui::controls;
use crate::tui::slash::{self, BiasCommand, Command};

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
            Command::Bias(bias) => match self.bias(bias) {
                Ok((message, changed)) => {
                    self.message = Some(message);
                    return if changed {
                        self.params_changed()
                    } else {
                        vec![]
                    };
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
            Command::Sessions => self.open_session_picker().map(Some),
            Command::Resume(id) => self.resume(&id).map(Some),
            Command::New => self.new_session().map(Some),
            Command::Rename(text) => self.rename(&text).map(Some),
            Command::Delete => self.delete_session().map(Some),
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
            Command::Copy { all } => self.copy_command(all),
            Command::Edit => {
                self.open_editor();
                Ok(None)
            }
            Command::Read(path) => self.read_file(&path),
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

    /// Carries out `/bias`: the message to show, and whether the settings changed. A new
    /// entry is checked with the model's tokenizer (a string must be exactly one token) and
    /// kept as a token id, so the engine never meets one it cannot use.
    fn bias(&mut self, command: BiasCommand) -> Result<(String, bool), String> {
        let tokenizer = self.engine.tokenizer.clone();
        let shown = |params: &crate::generate::SamplingParams| {
            controls::show_biases(params, tokenizer.as_deref())
        };
        match command {
            BiasCommand::List if self.params.logit_bias.is_empty() => Ok((
                "no logit bias set (/bias TOKEN=BIAS adds one)".into(),
                false,
            )),
            BiasCommand::List => Ok((format!("logit bias {}", shown(&self.params)), false)),
            BiasCommand::Clear if self.params.logit_bias.is_empty() => {
                Ok(("no logit bias set".into(), false))
            }
            BiasCommand::Clear => {
                self.params.logit_bias.clear();
                Ok(("logit bias cleared".into(), true))
            }
            BiasCommand::Set(entry) => {
                let Some(tokenizer) = tokenizer.as_deref() else {
                    return Err("the model is still loading: /bias needs its tokenizer".into());
                };
                let entry = entry.resolve(tokenizer)?;
                // Entries from the config file are still text: as ids, the same token matches.
                for b in &mut self.params.logit_bias {
                    if let Ok(resolved) = b.resolve(tokenizer) {
                        *b = resolved;
                    }
                }
                let name = controls::show_bias(&entry, Some(tokenizer));
                let removing = entry.bias == 0.0;
                let old = controls::set_bias(&mut self.params, entry);
                Ok(match (removing, old) {
                    (true, None) => (format!("no bias set for {}", name_of(&name)), false),
                    (true, Some(_)) => (format!("bias removed for {}", name_of(&name)), true),
                    (false, _) => (format!("logit bias {name}"), true),
                })
            }
        }
    }

    /// Forgets the conversation (the settings and the input stay).
    pub(super) fn clear(&mut self) {
        self.engine.queued = false;
        let c = &mut self.conversation;
        c.turns.clear();
        c.replies.clear();
        c.forks.clear();
        c.document.clear();
        c.continuation_start = None;
        self.inspect = None;
        self.messages = Default::default();
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

/// The token part of a shown bias (`" the"` of `" the"=+0`).
fn name_of(shown: &str) -> &str {
    shown.rsplit_once('=').map_or(shown, |(token, _)| token)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::engine::chat::ChatFormat;
    use crate::generate::bias::{BiasToken, LogitBias};
    use crate::generate::SamplingParams;
    use crate::tokenizer::Tokenizer;
    use crate::tui::state::EngineState;

    fn app() -> App {
        let (themes, _) = crate::tui::theme::load_themes(None);
        let mut app = App::new(
            SamplingParams::default(),
            Mode::Chat,
            ChatFormat::Dialogpt,
            String::new(),
            themes,
            "dark",
        );
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/tiny-gpt2/tokenizer.json"
        );
        let tokenizer = Tokenizer::from_json_file(std::path::Path::new(path)).unwrap();
        app.engine.tokenizer = Some(Arc::new(tokenizer));
        app
    }

    fn the(app: &App) -> u32 {
        let ids = app
            .engine
            .tokenizer
            .as_ref()
            .unwrap()
            .encode(" the")
            .unwrap();
        assert_eq!(ids.len(), 1);
        ids[0]
    }

    #[test]
    fn a_bias_is_kept_as_an_id_and_reaches_a_running_reply() {
        let mut app = app();
        app.engine.state = EngineState::Generating;
        let requests = app.command("bias \" the\"=-inf");
        let id = the(&app);
        assert_eq!(
            app.params.logit_bias,
            vec![LogitBias {
                token: BiasToken::Id(id),
                bias: f32::NEG_INFINITY
            }]
        );
        assert_eq!(app.message.as_deref(), Some("logit bias \" the\"=-inf"));
        assert!(
            matches!(requests.as_slice(), [Request::SetParams(p)] if p.logit_bias == app.params.logit_bias)
        );
        // The same token again, by id: replaced, not added.
        app.command(&format!("bias {id}=2.5"));
        assert_eq!(app.params.logit_bias.len(), 1);
        assert_eq!(app.params.logit_bias[0].bias, 2.5);
        app.command("bias 50256=-1");
        app.command("bias");
        assert_eq!(
            app.message.as_deref(),
            Some("logit bias \" the\"=+2.5 \"<|endoftext|>\"=-1")
        );
    }

    #[test]
    fn a_string_of_two_tokens_is_refused_with_its_pieces() {
        let mut app = app();
        app.engine.state = EngineState::Generating;
        let requests = app.command("bias \"hello world\"=-5");
        assert!(requests.is_empty());
        assert!(app.params.logit_bias.is_empty());
        let message = app.message.clone().unwrap();
        assert!(message.contains("2 tokens, not one"), "{message}");
        assert!(message.contains("\"hello\" + \" world\""), "{message}");
        app.command("bias 99999999=1");
        assert!(app
            .message
            .as_deref()
            .unwrap()
            .contains("not in the vocabulary"));
        app.command("bias 5=abc");
        assert!(app.message.as_deref().unwrap().contains("usage: /bias"));
        assert!(app.params.logit_bias.is_empty());
    }

    #[test]
    fn zero_removes_one_and_clear_removes_all() {
        let mut app = app();
        app.command("bias");
        assert_eq!(
            app.message.as_deref(),
            Some("no logit bias set (/bias TOKEN=BIAS adds one)")
        );
        app.command("bias \" the\"=-inf");
        app.command("bias 50256=3");
        app.command("bias \" the\"=0");
        assert_eq!(app.message.as_deref(), Some("bias removed for \" the\""));
        assert_eq!(app.params.logit_bias.len(), 1);
        assert_eq!(app.params.logit_bias[0].id(), Some(50256));
        app.command("bias \" the\"=0");
        assert_eq!(app.message.as_deref(), Some("no bias set for \" the\""));
        app.engine.state = EngineState::Generating;
        let requests = app.command("bias clear");
        assert!(app.params.logit_bias.is_empty());
        assert_eq!(app.message.as_deref(), Some("logit bias cleared"));
        assert!(matches!(requests.as_slice(), [Request::SetParams(p)] if p.logit_bias.is_empty()));
    }

    #[test]
    fn a_bias_waits_for_the_tokenizer() {
        let mut app = app();
        app.engine.tokenizer = None;
        app.command("bias 5=1");
        assert!(app.message.as_deref().unwrap().contains("still loading"));
        assert!(app.params.logit_bias.is_empty());
    }
}
