//! `/sessions`, `/resume`, `/new`, `/rename` and `/delete`: the saved conversations from the
//! interface.

use super::App;
use crate::sessions::{self, Store};

impl App {
    pub(super) fn store(&self) -> Result<Store, String> {
        self.sessions
            .store
            .clone()
            .ok_or_else(|| "no data folder for sessions".into())
    }

    pub(super) fn refuse_while_writing(&self) -> Result<(), String> {
        if self.is_generating() {
            Err("stop the generation first (Esc)".into())
        } else {
            Ok(())
        }
    }

    /// `/resume [ID]`: opens a saved conversation (the newest other one without an id).
    pub(super) fn resume(&mut self, id: &str) -> Result<String, String> {
        self.refuse_while_writing()?;
        let store = self.store()?;
        self.save_session_now();
        let session = if id.is_empty() {
            let (list, _) = store.list()?;
            let other = list
                .iter()
                .find(|s| s.id != self.sessions.id)
                .ok_or("no other saved session")?;
            store.open(&other.id)?
        } else {
            store.open(id)?
        };
        let id = session.id.clone();
        let title = session.shown_title();
        self.restore_session(session);
        self.check_resumed_model();
        Ok(self
            .message
            .clone()
            .unwrap_or_else(|| format!("resumed {id} {title}")))
    }

    /// `/new`: the conversation so far stays saved; a fresh one starts under a new id.
    pub(super) fn new_session(&mut self) -> Result<String, String> {
        self.refuse_while_writing()?;
        self.save_session_now();
        self.start_fresh();
        Ok(format!("new conversation {}", self.sessions.id))
    }

    fn start_fresh(&mut self) {
        self.clear();
        self.sessions.renew();
    }

    /// `/rename TEXT`: the title the listings show (empty: the first words again).
    pub(super) fn rename(&mut self, text: &str) -> Result<String, String> {
        let name = sessions::title_of(text);
        self.sessions.name = (!name.is_empty()).then(|| name.clone());
        self.save_session_now();
        Ok(if name.is_empty() {
            "title: the first words".into()
        } else {
            format!("renamed to {name}")
        })
    }

    /// `/delete`: asks; the next key answers ([`App::on_delete_answer`]).
    pub(super) fn delete_session(&mut self) -> Result<String, String> {
        self.refuse_while_writing()?;
        self.store()?;
        self.sessions.delete_armed = true;
        let title = self.to_session().shown_title();
        Ok(format!(
            "delete session {} ({title})? y deletes it, any other key keeps it",
            self.sessions.id
        ))
    }

    /// Deletes this conversation's file and starts a fresh one.
    pub(super) fn delete_current(&mut self) -> Result<String, String> {
        self.refuse_while_writing()?;
        let store = self.store()?;
        let id = self.sessions.id.clone();
        let on_disk = store.path_of(&id).is_some_and(|p| p.is_file());
        if on_disk {
            store.delete(&id)?;
        }
        self.start_fresh();
        Ok(if on_disk {
            format!("deleted {id}")
        } else {
            format!("{id} was not saved; started over")
        })
    }
}
