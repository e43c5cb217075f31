//! The token cursor: moving over a reply's tokens (and the user's own text before it), the
//! alternatives at each, branching on one, and asking the engine for a token's attention.

use crossterm::event::{KeyCode, KeyEvent};

use super::conversation::CursorStop;
use super::replies::{Branches, Piece};
use super::App;
use crate::engine::{AttentionMap, PromptToken, Request};
use crate::generate::bias::{BiasToken, LogitBias};
use crate::tui::controls;
use crate::tui::keys::KeyAction;

/// Where the token cursor is and what it shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Inspect {
    /// The reply's key in [`super::Conversation::replies`] (or in `prompts`, with `prompt`).
    pub reply: usize,
    /// The token's index in the reply's shown branch (or in the user's text).
    pub token: usize,
    /// On the user's text before the reply (`Conversation::prompt_tokens`), not the reply.
    pub prompt: bool,
    /// The highlighted row of the alternatives while choosing one to branch on.
    pub choosing: Option<usize>,
    /// The attention view, when open.
    pub attention: Option<AttentionView>,
    /// The popup shows the sampler trace of the token instead of its alternatives.
    pub trace: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AttentionView {
    pub layer: usize,
    /// One head, or `None` for the average over heads.
    pub head: Option<usize>,
    /// The request this view waits for (or was answered by).
    pub serial: u64,
    /// `None` while the engine computes it.
    pub map: Option<Result<AttentionMap, String>>,
}

impl AttentionView {
    /// The weights shown: one head's, or the mean over heads; `None` until answered.
    pub fn weights(&self) -> Option<Vec<f32>> {
        self.weights_of(self.head)
    }

    /// The weights of `head` (or their average, for `None`) in the chosen layer.
    pub fn weights_of(&self, head: Option<usize>) -> Option<Vec<f32>> {
        let Some(Ok(map)) = &self.map else {
            return None;
        };
        let heads = map
            .weights
            .get(self.layer.min(map.weights.len().checked_sub(1)?))?;
        match head {
            Some(h) => heads.get(h.min(heads.len().checked_sub(1)?)).cloned(),
            None => {
                let n = heads.len().max(1) as f32;
                let keys = heads.first().map_or(0, Vec::len);
                Some(
                    (0..keys)
                        .map(|k| heads.iter().filter_map(|row| row.get(k)).sum::<f32>() / n)
                        .collect(),
                )
            }
        }
    }

    /// (layers, heads) in the answer.
    pub fn shape(&self) -> Option<(usize, usize)> {
        match &self.map {
            Some(Ok(map)) => Some((map.weights.len(), map.weights.first().map_or(0, Vec::len))),
            _ => None,
        }
    }
}

impl App {
    /// The reply and token under the cursor, when it still points at one.
    pub fn inspected(&self) -> Option<(&Inspect, &Branches, &Piece)> {
        let inspect = self.inspect.as_ref().filter(|i| !i.prompt)?;
        let reply = self.conversation.replies.get(&inspect.reply)?;
        let piece = reply.pieces().get(inspect.token)?;
        Some((inspect, reply, piece))
    }

    /// The token of the user's text under the cursor, with the text's tokens.
    pub fn inspected_prompt(&self) -> Option<(&Inspect, &[PromptToken], &PromptToken)> {
        let inspect = self.inspect.as_ref().filter(|i| i.prompt)?;
        let tokens = self.conversation.prompt_tokens(inspect.reply)?;
        Some((inspect, tokens, tokens.get(inspect.token)?))
    }

    /// Where the cursor is, as a stop of [`super::Conversation::cursor_stops`].
    fn stop(&self) -> Option<CursorStop> {
        self.inspect.as_ref().map(|i| CursorStop {
            key: i.reply,
            prompt: i.prompt,
        })
    }

    /// Puts the cursor on the last token of the last reply (or of the user's last scored text,
    /// before any reply).
    pub(super) fn start_inspecting(&mut self) {
        let Some(&stop) = self.conversation.cursor_stops().last() else {
            self.message = Some(
                "no reply to inspect yet (your own text shows once F3 or F6 is on when it is sent)"
                    .into(),
            );
            return;
        };
        let token = self.conversation.stop_len(stop) - 1;
        self.inspect = Some(at_stop(stop, token, false));
        self.message = None;
    }

    /// Carries out a key of the token cursor (found in [`crate::tui::keys`]'s inspect scope).
    pub(super) fn on_inspect_action(&mut self, action: KeyAction, key: &KeyEvent) -> Vec<Request> {
        let Some(inspect) = self.inspect.as_mut() else {
            return vec![];
        };
        let on_prompt = inspect.prompt;
        let stop = CursorStop {
            key: inspect.reply,
            prompt: on_prompt,
        };
        let tokens = self.conversation.stop_len(stop);
        let rows = self
            .conversation
            .replies
            .get(&inspect.reply)
            .filter(|_| !on_prompt)
            .and_then(|r| r.pieces().get(inspect.token))
            .map_or(0, |p| p.top.len());
        let moved_to = |token: usize| Some(token.min(tokens.saturating_sub(1)));
        let target = match action {
            KeyAction::StopChoosing => {
                inspect.choosing = None;
                None
            }
            KeyAction::CloseAttention => {
                inspect.attention = None;
                None
            }
            KeyAction::LeaveInspecting => {
                self.inspect = None;
                return vec![];
            }
            KeyAction::ChooseUp => {
                inspect.choosing = inspect.choosing.map(|row| row.saturating_sub(1));
                None
            }
            KeyAction::ChooseDown => {
                inspect.choosing = inspect
                    .choosing
                    .map(|row| (row + 1).min(rows.saturating_sub(1)));
                None
            }
            KeyAction::Branch => match inspect.choosing {
                Some(row) => return self.branch_on(row),
                None => None,
            },
            KeyAction::StartChoosing if on_prompt => {
                self.message = Some("your own text has no draw to branch from".into());
                return vec![];
            }
            KeyAction::StartChoosing => {
                inspect.choosing = Some(0);
                inspect.attention = None;
                inspect.trace = false;
                None
            }
            KeyAction::ToggleTrace => {
                inspect.trace = !inspect.trace;
                inspect.choosing = None;
                inspect.attention = None;
                None
            }
            KeyAction::BanToken => return self.ban(),
            KeyAction::TokenLeft => moved_to(inspect.token.saturating_sub(1)),
            KeyAction::TokenRight => moved_to(inspect.token + 1),
            KeyAction::TokenFirst => moved_to(0),
            KeyAction::TokenLast => moved_to(tokens.saturating_sub(1)),
            KeyAction::PreviousReply => return self.move_reply(-1),
            KeyAction::NextReply => return self.move_reply(1),
            KeyAction::NextBranch => return self.cycle_branch(1),
            KeyAction::PreviousBranch => return self.cycle_branch(-1),
            KeyAction::ToggleAttention if on_prompt => {
                self.message = Some("attention is shown for the model's own tokens".into());
                return vec![];
            }
            KeyAction::ToggleAttention => {
                if inspect.attention.take().is_none() {
                    return self.request_attention();
                }
                None
            }
            KeyAction::StepAttention => {
                if let (KeyCode::Char(c), Some(view)) = (key.code, inspect.attention.as_mut()) {
                    step_attention(view, c);
                }
                None
            }
            _ => None,
        };
        if let Some(token) = target {
            return self.move_cursor(token);
        }
        vec![]
    }

    /// Moves the cursor to `token` of the same reply; an open attention view follows it.
    fn move_cursor(&mut self, token: usize) -> Vec<Request> {
        let Some(inspect) = self.inspect.as_mut() else {
            return vec![];
        };
        let follow = inspect.token != token && inspect.attention.is_some();
        inspect.token = token;
        inspect.choosing = None;
        if follow {
            return self.request_attention();
        }
        vec![]
    }

    /// To the previous (`-1`) or next (`+1`) reply or text of the user's, at its last token.
    fn move_reply(&mut self, direction: i32) -> Vec<Request> {
        let stops = self.conversation.cursor_stops();
        let (Some(inspect), Some(here)) = (self.inspect.as_ref(), self.stop()) else {
            return vec![];
        };
        let at = stops.iter().position(|s| *s == here).unwrap_or(0) as i64;
        let Some(&stop) = stops.get((at + direction as i64).max(0) as usize) else {
            return vec![];
        };
        if stop == here {
            return vec![];
        }
        let token = self.conversation.stop_len(stop) - 1;
        let attention = inspect.attention.is_some() && !stop.prompt;
        self.inspect = Some(at_stop(stop, token, inspect.trace));
        self.reveal(stop.key);
        if attention {
            return self.request_attention();
        }
        vec![]
    }

    /// Scrolls so that the chat turn `turn` starts in view (its lines from the last frame).
    fn reveal(&mut self, turn: usize) {
        if self.conversation.mode != super::Mode::Chat {
            return;
        }
        let system = usize::from(!self.conversation.system.is_empty());
        self.panes.reveal(turn + system);
    }

    /// Replaces the token under the cursor with alternative `row` and writes on from there,
    /// keeping the old version as another branch.
    fn branch_on(&mut self, row: usize) -> Vec<Request> {
        let Some((inspect, _, piece)) = self.inspected() else {
            return vec![];
        };
        let (key, at) = (inspect.reply, inspect.token);
        let refusal = self.engine.refusal().or_else(|| {
            (!self.conversation.is_last_reply(key))
                .then(|| "only the last reply can branch: later turns answer it".to_string())
        });
        if let Some(why) = refusal {
            self.message = Some(why);
            return vec![];
        }
        let Some(chosen) = piece.top.get(row).cloned() else {
            return vec![];
        };
        let tokenizer = self.engine.tokenizer.clone();
        let reply = self
            .conversation
            .replies
            .get_mut(&key)
            .expect("checked above");
        let Some(ids) = reply.branch(at, &chosen, tokenizer.as_deref()) else {
            return vec![];
        };
        self.conversation.show_branch(key);
        self.inspect = Some(at_stop(CursorStop { key, prompt: false }, at, false));
        self.start_writing();
        vec![Request::Branch {
            prompt: self.conversation.prompt_before(key),
            reply: ids,
            // The settings in the panel now, as for any new reply.
            params: self.params.clone(),
        }]
    }

    /// Bans the token under the cursor, or the alternative highlighted while choosing: a logit
    /// bias of -inf from the next token on (of the reply being written too).
    fn ban(&mut self) -> Vec<Request> {
        let Some((inspect, _, piece)) = self.inspected() else {
            let Some((id, text)) = self
                .inspected_prompt()
                .map(|(_, _, token)| (token.id, token.text.clone()))
            else {
                return vec![];
            };
            return self.ban_id(id, &text);
        };
        let id = inspect
            .choosing
            .and_then(|row| piece.top.get(row))
            .map_or(piece.id, |c| c.id);
        let text = match (
            &self.engine.tokenizer,
            piece.top.iter().find(|c| c.id == id),
        ) {
            (Some(t), _) if (id as usize) < t.vocab_size() => t.token_text(id),
            (_, Some(c)) => c.text.clone(),
            _ => piece.text.clone(),
        };
        self.ban_id(id, &text)
    }

    /// A logit bias of -inf for token `id` (shown as `text`) from the next token on.
    fn ban_id(&mut self, id: u32, text: &str) -> Vec<Request> {
        controls::set_bias(
            &mut self.params,
            LogitBias {
                token: BiasToken::Id(id),
                bias: f32::NEG_INFINITY,
            },
        );
        self.message = Some(format!(
            "banned {text:?} ({id}=-inf) · /bias {id}=0 lifts it"
        ));
        self.params_changed()
    }

    /// Shows the next or previous branch of the reply under the cursor.
    fn cycle_branch(&mut self, direction: i32) -> Vec<Request> {
        let Some(key) = self.inspect.as_ref().map(|i| i.reply) else {
            return vec![];
        };
        if self.is_generating() || !self.conversation.is_last_reply(key) {
            self.message = Some(if self.is_generating() {
                "the model is still writing".to_string()
            } else {
                "only the last reply's branches can be switched".to_string()
            });
            return vec![];
        }
        let Some(reply) = self.conversation.replies.get_mut(&key) else {
            return vec![];
        };
        if reply.count() < 2 {
            self.message =
                Some("this reply has one branch: Enter on an alternative adds one".into());
            return vec![];
        }
        reply.cycle(direction);
        let tokens = reply.pieces().len();
        self.conversation.show_branch(key);
        if let Some(inspect) = self.inspect.as_mut() {
            inspect.token = inspect.token.min(tokens.saturating_sub(1));
            inspect.choosing = None;
            inspect.attention = None;
        }
        vec![]
    }

    /// Opens the attention view for the token under the cursor and asks the engine for it.
    fn request_attention(&mut self) -> Vec<Request> {
        let Some((inspect, reply, _)) = self.inspected() else {
            return vec![];
        };
        if let Some(why) = self
            .engine
            .model
            .is_none()
            .then_some("the model is still loading")
        {
            self.message = Some(why.into());
            return vec![];
        }
        let key = inspect.reply;
        let ids: Vec<u32> = reply.pieces()[..=inspect.token]
            .iter()
            .map(|p| p.id)
            .collect();
        let (layer, head) = inspect
            .attention
            .as_ref()
            .map_or((0, None), |v| (v.layer, v.head));
        let serial = self.engine.next_attention_serial();
        let prompt = self.conversation.prompt_before(key);
        if let Some(inspect) = self.inspect.as_mut() {
            inspect.choosing = None;
            inspect.attention = Some(AttentionView {
                layer,
                head,
                serial,
                map: None,
            });
        }
        vec![Request::Attention {
            serial,
            prompt,
            reply: ids,
        }]
    }

    /// The engine's answer to an attention request: kept only if the view still waits for it.
    pub(super) fn on_attention(&mut self, serial: u64, map: Result<AttentionMap, String>) {
        let view = self
            .inspect
            .as_mut()
            .and_then(|i| i.attention.as_mut())
            .filter(|v| v.serial == serial);
        if let Some(view) = view {
            view.map = Some(map);
        }
    }
}

/// The cursor at `token` of `stop`, nothing open but the trace when `trace`.
fn at_stop(stop: CursorStop, token: usize, trace: bool) -> Inspect {
    Inspect {
        reply: stop.key,
        token,
        prompt: stop.prompt,
        choosing: None,
        attention: None,
        trace,
    }
}

/// `[` `]` layer, `<` `>` (or `,` `.`) head, through the average after the last head; `m`
/// toggles the average.
fn step_attention(view: &mut AttentionView, key: char) {
    let Some((layers, heads)) = view.shape() else {
        return;
    };
    let wrap = |i: usize, by: i64, n: usize| (i as i64 + by).rem_euclid(n.max(1) as i64) as usize;
    // Heads 0..heads, then the average at `heads`.
    let head_slot = view.head.unwrap_or(heads);
    let slot = |s: usize| (s < heads).then_some(s);
    match key {
        '[' => view.layer = wrap(view.layer, -1, layers),
        ']' => view.layer = wrap(view.layer, 1, layers),
        '<' | ',' => view.head = slot(wrap(head_slot, -1, heads + 1)),
        '>' | '.' => view.head = slot(wrap(head_slot, 1, heads + 1)),
        'm' => view.head = if view.head.is_some() { None } else { Some(0) },
        _ => {}
    }
}
