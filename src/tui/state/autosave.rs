//! The conversation as a saved session: autosave (after each turn, and at most once a second
//! while a reply is written), resuming one, and `/sessions`, `/resume`, `/new`, `/rename`,
//! `/delete`. Each instance writes only the file of its own session id.

use std::time::{Duration, Instant};

use super::saved::{restore_forks, restore_replies, save_forks, save_replies};
use super::App;
use crate::sessions::{self, Session, Store, FORMAT_VERSION, FORMAT_WITHOUT_FORKS};

/// While a reply is written, the session file is rewritten at most this often.
pub const WRITE_EVERY: Duration = Duration::from_secs(1);

/// The session this conversation is kept as, and when it was last written.
#[derive(Debug)]
pub struct Autosave {
    /// Where sessions live; `None` in tests and when there is no data folder.
    pub store: Option<Store>,
    /// `[chat] autosave`: write the session by itself.
    pub enabled: bool,
    pub id: String,
    pub created: u64,
    /// The name `/rename` gave (otherwise the title is the first words).
    pub name: Option<String>,
    /// The model named in the file until the engine says which one it loaded.
    pub model: String,
    /// A resumed session's model, compared with the loaded one when it arrives.
    pub resumed_model: Option<String>,
    /// The last text written, without its time: nothing is written while it is unchanged.
    written: Option<String>,
    written_at: Option<Instant>,
    written_turns: usize,
    /// The last write failed with this (said once).
    failed: Option<String>,
    /// `/delete` asked: the next key answers (`y` deletes).
    pub delete_armed: bool,
}

impl Default for Autosave {
    fn default() -> Self {
        Self {
            store: None,
            enabled: false,
            id: sessions::new_id(sessions::now()),
            created: sessions::now(),
            name: None,
            model: String::new(),
            resumed_model: None,
            written: None,
            written_at: None,
            written_turns: 0,
            failed: None,
            delete_armed: false,
        }
    }
}

impl Autosave {
    /// A fresh session id for a new conversation (the old file stays as it is).
    pub(super) fn renew(&mut self) {
        let model = std::mem::take(&mut self.model);
        *self = Self {
            store: self.store.take(),
            enabled: self.enabled,
            model,
            ..Self::default()
        };
    }
}

impl App {
    /// Keeps sessions in `store`, writing them by themselves when `autosave` is on.
    pub fn attach_sessions(&mut self, store: Option<Store>, autosave: bool, model: &str) {
        self.sessions.store = store;
        self.sessions.enabled = autosave;
        self.sessions.model = model.into();
    }

    fn model_name(&self) -> String {
        self.engine
            .model
            .as_ref()
            .map_or_else(|| self.sessions.model.clone(), |m| m.name.clone())
    }

    /// The conversation as a session (its `updated` time left at 0).
    pub fn to_session(&self) -> Session {
        let c = &self.conversation;
        let mut session = Session {
            version: if c.forks.is_empty() {
                FORMAT_WITHOUT_FORKS
            } else {
                FORMAT_VERSION
            },
            id: self.sessions.id.clone(),
            title: String::new(),
            renamed: self.sessions.name.is_some(),
            created: self.sessions.created,
            updated: 0,
            model: self.model_name(),
            mode: c.mode,
            format: c.format,
            system: c.system.clone(),
            turns: c.turns.clone(),
            document: c.document.clone(),
            continuation_start: c.continuation_start,
            settings: self.params.clone(),
            replies: save_replies(&c.replies),
            forks: save_forks(&c.forks),
        };
        session.title = self
            .sessions
            .name
            .clone()
            .unwrap_or_else(|| session.shown_title());
        session
    }

    /// Carries on with a saved session: its conversation, branches and settings, under its id.
    pub fn restore_session(&mut self, s: Session) {
        let c = &mut self.conversation;
        c.mode = s.mode;
        c.format = s.format;
        c.system = s.system;
        c.turns = s.turns;
        c.document = s.document;
        c.continuation_start = s.continuation_start.filter(|&at| at <= c.document.len());
        c.replies = restore_replies(s.replies, &c.turns, 0, &s.settings);
        c.forks = restore_forks(s.forks, c.turns.len(), &s.settings);
        self.inspect = None;
        self.messages = Default::default();
        self.engine.queued = false;
        self.params = s.settings;
        self.panes.follow();
        let a = &mut self.sessions;
        a.id = s.id;
        a.created = s.created;
        a.name = s.renamed.then_some(s.title);
        a.model = s.model.clone();
        a.resumed_model = Some(s.model);
        a.delete_armed = false;
        a.written_at = None;
        // What was read is what is on disk: nothing to write until something changes.
        let text = self.session_text();
        self.sessions.written = Some(text);
        self.sessions.written_turns = self.conversation.turns.len();
    }

    fn session_text(&self) -> String {
        serde_json::to_string(&self.to_session()).expect("plain data")
    }

    /// After an action: writes the session if it changed, at once when idle or when a turn was
    /// added, otherwise at most once a second while a reply is written.
    pub(super) fn autosave(&mut self) {
        if !self.sessions.enabled {
            return;
        }
        let turns = self.conversation.turns.len();
        let throttled = self.is_generating()
            && turns == self.sessions.written_turns
            && self
                .sessions
                .written_at
                .is_some_and(|at| at.elapsed() < WRITE_EVERY);
        if !throttled {
            self.save_session_now();
        }
    }

    /// Writes the session now if it changed since the last write (an empty one is not
    /// written). Called when quitting too.
    pub fn save_session_now(&mut self) {
        let Some(store) = self.sessions.store.clone() else {
            return;
        };
        if !self.sessions.enabled {
            return;
        }
        let mut session = self.to_session();
        if session.is_empty() {
            return;
        }
        let text = serde_json::to_string(&session).expect("plain data");
        if self.sessions.written.as_ref() == Some(&text) {
            return;
        }
        session.updated = sessions::now();
        match store.save(&session) {
            Ok(_) => {
                self.sessions.failed = None;
                self.sessions.written = Some(text);
                self.sessions.written_at = Some(Instant::now());
                self.sessions.written_turns = session.turns.len();
            }
            Err(e) => {
                if self.sessions.failed.as_ref() != Some(&e) {
                    self.message = Some(format!("autosave: {e}"));
                }
                self.sessions.failed = Some(e);
                // Tried now: the next try waits as a write would.
                self.sessions.written_at = Some(Instant::now());
            }
        }
    }

    /// The model arrived: a resumed session written with another model says so.
    pub(super) fn check_resumed_model(&mut self) {
        let Some(loaded) = self.engine.model.as_ref().map(|m| m.name.clone()) else {
            return;
        };
        self.sessions.model = loaded.clone();
        if let Some(was) = self.sessions.resumed_model.take() {
            if !was.is_empty() && was != loaded {
                self.message = Some(format!(
                    "this conversation was written with {was}; it goes on with {loaded}"
                ));
            }
        }
    }
}

#[cfg(test)]
#[path = "autosave_tests.rs"]
mod tests;
