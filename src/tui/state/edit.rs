//! The message cursor (Alt+↑: pick any turn of the chat) and editing a turn: `e` puts it in
//! the input, Enter replaces it and writes on from there, keeping what was there as another
//! version of that turn (b/B in the cursor switch versions).

use super::replies::{Branches, Piece};
use super::{App, Mode};
use crate::engine::chat::{Role, Turn};
use crate::engine::Request;
use crate::tui::keys::KeyAction;

/// The turn under the message cursor, and the turn whose edit the input holds.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Messages {
    pub selected: Option<usize>,
    pub editing: Option<usize>,
}

impl App {
    /// How the conversation pane names turn `index` (`You`, `GPT-2`): marked under the message
    /// cursor (▶) or while edited (✎), with its version when editing made more than one.
    pub fn turn_label(&self, index: usize, name: &str) -> String {
        let mark = if self.messages.selected == Some(index) {
            "▶ "
        } else if self.messages.editing == Some(index) {
            "✎ "
        } else {
            ""
        };
        match self.conversation.version_of(index) {
            Some((shown, count)) => format!("{mark}{name} [{shown}/{count}]"),
            None => format!("{mark}{name}"),
        }
    }

    /// Puts the message cursor on the last turn.
    pub(super) fn start_selecting(&mut self) {
        if self.conversation.mode != Mode::Chat || self.conversation.turns.is_empty() {
            self.message = Some("no message to pick (chat mode, after the first turn)".into());
            return;
        }
        self.inspect = None;
        self.move_selection(self.conversation.turns.len() - 1);
        self.message = Some("message cursor: ↑↓ pick, e edit, b/B versions, y copy, Esc".into());
    }

    fn move_selection(&mut self, turn: usize) {
        let turn = turn.min(self.conversation.turns.len().saturating_sub(1));
        self.messages.selected = Some(turn);
        let system = usize::from(!self.conversation.system.is_empty());
        self.panes.reveal(turn + system);
    }

    /// Carries out a key of the message cursor (the messages scope of [`crate::tui::keys`]).
    pub(super) fn on_message_action(&mut self, action: KeyAction) -> Vec<Request> {
        let Some(at) = self.messages.selected else {
            return vec![];
        };
        match action {
            KeyAction::MessageUp => self.move_selection(at.saturating_sub(1)),
            KeyAction::MessageDown => self.move_selection(at + 1),
            KeyAction::LeaveMessages => self.messages.selected = None,
            KeyAction::EditMessage => self.start_editing(at),
            KeyAction::NextVersion | KeyAction::PreviousVersion => {
                let direction = if action == KeyAction::NextVersion {
                    1
                } else {
                    -1
                };
                self.switch_version(at, direction);
            }
            KeyAction::CopyReply => self.copy_turn(at),
            _ => {}
        }
        vec![]
    }

    fn switch_version(&mut self, at: usize, direction: i32) {
        if self.is_generating() {
            self.message = Some("the model is still writing".into());
            return;
        }
        self.message = Some(match self.conversation.switch_version(at, direction) {
            Some((shown, count)) => format!("version {shown} of {count} from this turn"),
            None => "this turn has one version: e edits it, Enter writes a new one".into(),
        });
        self.inspect = None;
        self.move_selection(at);
    }

    /// `e`: the turn's text goes into the input; Enter replaces the turn, Esc cancels.
    fn start_editing(&mut self, at: usize) {
        if let Some(why) = self.engine.refusal() {
            self.message = Some(why);
            return;
        }
        let Some(turn) = self.conversation.turns.get(at) else {
            return;
        };
        self.input.set(turn.text.clone());
        self.messages = Messages {
            selected: None,
            editing: Some(at),
        };
        self.message = Some(
            match turn.role {
                Role::User => "editing your message: Enter sends it and the model answers again",
                Role::Model => "editing the reply: Enter keeps your text and the model writes on",
            }
            .to_string()
                + " (the old version stays: b/B in the message cursor) · Esc cancels",
        );
    }

    /// Esc while editing: the turn stays as it was.
    pub(super) fn cancel_edit(&mut self) {
        self.messages.editing = None;
        self.input.take();
        self.message = Some("edit cancelled".into());
    }

    /// Enter while editing turn `at`: keeps the chat from `at` on as a version of that turn,
    /// puts the new text there, and has the model write on (the prompt's cached prefix is
    /// reused, so only what follows the change is run through the model).
    pub(super) fn submit_edit(&mut self, at: usize) -> Vec<Request> {
        if let Some(why) = self.engine.refusal() {
            self.message = Some(why);
            return vec![];
        }
        let Some(role) = self.conversation.turns.get(at).map(|t| t.role) else {
            self.messages.editing = None;
            self.message = Some("that turn is gone".into());
            return vec![];
        };
        let text = self.input.text.clone();
        if role == Role::User && text.trim().is_empty() {
            self.message = Some("an empty message: type one, or Esc to cancel the edit".into());
            return vec![];
        }
        let decided = match (role, self.engine.tokenizer.as_deref()) {
            (Role::Model, Some(tokenizer)) if !text.is_empty() => match tokenizer.encode(&text) {
                Ok(ids) => ids,
                Err(e) => {
                    self.message = Some(format!("cannot split the reply into tokens: {e}"));
                    return vec![];
                }
            },
            (Role::Model, None) if !text.is_empty() => {
                self.message = Some("the model is still loading: wait to continue a reply".into());
                return vec![];
            }
            _ => vec![],
        };
        self.input.take();
        self.messages.editing = None;
        self.inspect = None;
        let c = &mut self.conversation;
        c.fork_at(at);
        if decided.is_empty() {
            // A user message, or a reply emptied: the model answers afresh.
            if role == Role::User {
                c.turns.push(Turn { role, text });
            }
            return self.generate();
        }
        let tokenizer = self.engine.tokenizer.clone().expect("encoded above");
        c.replies
            .insert(at, written_reply(&tokenizer, &decided, &text, &self.params));
        c.turns.push(Turn { role, text });
        self.start_writing();
        let mut params = self.params.clone();
        // The text you wrote does not use up the reply's length.
        params.max_tokens += decided.len();
        vec![Request::Branch {
            prompt: self.conversation.prompt_before(at),
            reply: decided,
            params,
        }]
    }
}

/// The reply's branch for text you wrote, as tokens: each piece releases the whole characters
/// decoded so far (a cut character comes with the token that completes it); taken as certain.
fn written_reply(
    tokenizer: &crate::tokenizer::Tokenizer,
    ids: &[u32],
    text: &str,
    params: &crate::generate::SamplingParams,
) -> Branches {
    let mut reply = Branches::default();
    let mut released = 0;
    for k in 0..ids.len() {
        let decoded = tokenizer.decode(&ids[..=k]);
        let whole = !decoded.ends_with('\u{FFFD}') && decoded.len() >= released;
        let piece = match (whole, decoded.get(released..)) {
            (true, Some(new)) if decoded.starts_with(&text[..released.min(text.len())]) => {
                new.to_string()
            }
            _ => String::new(),
        };
        released += piece.len();
        reply.push_piece(Piece {
            id: ids[k],
            text: piece,
            prob: 1.0,
            top: Vec::new(),
            params: params.clone(),
            trace: None,
        });
    }
    reply.push_text(text.get(released..).unwrap_or_default());
    reply
}
