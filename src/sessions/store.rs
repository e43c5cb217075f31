//! The folder of session files: one `ID.json` per conversation. Listing reads every file and
//! reports, without stopping, the ones it cannot use; nothing here ever writes over a file it
//! was not asked to.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Session, FORMAT_VERSION};
use crate::atomic_file::{write_atomic, TEMP_PREFIX};

/// A folder of session files.
#[derive(Debug, Clone, PartialEq)]
pub struct Store {
    dir: PathBuf,
}

/// One line of a listing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub id: String,
    pub created: u64,
    pub updated: u64,
    pub model: String,
    /// Messages, the user's and the model's.
    pub turns: usize,
    pub title: String,
    #[serde(skip)]
    pub path: PathBuf,
}

/// A file that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub file: PathBuf,
    pub error: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.error)
    }
}

impl Store {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `sessions/` in the platform's data folder for gpt2-tui (`$XDG_DATA_HOME/gpt2-tui/` on
    /// Linux).
    pub fn default_location() -> Option<Self> {
        directories::ProjectDirs::from("", "", "gpt2-tui")
            .map(|d| Self::new(d.data_dir().join("sessions")))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of a session id; `None` for a name that is not a plain id.
    pub fn path_of(&self, id: &str) -> Option<PathBuf> {
        let plain = !id.is_empty()
            && !id.starts_with('.')
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        plain.then(|| self.dir.join(format!("{id}.json")))
    }

    /// Writes the session (atomically) as `ID.json`, making the folder if need be.
    pub fn save(&self, session: &Session) -> Result<PathBuf, String> {
        let path = self
            .path_of(&session.id)
            .ok_or_else(|| format!("\"{}\" is not a session id", session.id))?;
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| format!("cannot make {}: {e}", self.dir.display()))?;
        let json = serde_json::to_vec_pretty(session).expect("plain data");
        write_atomic(&path, &json).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(path)
    }

    /// Reads one session file.
    pub fn read(path: &Path) -> Result<Session, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| format!("not a session file (corrupt or truncated): {e}"))?;
        let version = value.get("version").and_then(|v| v.as_u64());
        match version {
            None => return Err("not a session file (no format version)".into()),
            Some(v) if v > u64::from(FORMAT_VERSION) => {
                return Err(format!(
                    "made by a newer gpt2-tui (format {v}; this one reads up to {FORMAT_VERSION})"
                ))
            }
            Some(_) => {}
        }
        let session: Session = serde_json::from_value(value)
            .map_err(|e| format!("not a session file (corrupt or truncated): {e}"))?;
        session.settings.validate()?;
        Ok(session)
    }

    /// Opens the session `id`.
    pub fn open(&self, id: &str) -> Result<Session, String> {
        let path = self
            .path_of(id)
            .filter(|p| p.is_file())
            .ok_or_else(|| format!("no saved session \"{id}\" in {}", self.dir.display()))?;
        Self::read(&path).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Every session, newest first, and the files that could not be read. A folder that does
    /// not exist yet holds none; one that cannot be read is an error.
    pub fn list(&self) -> Result<(Vec<Summary>, Vec<Problem>), String> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
            Err(e) => return Err(format!("cannot read {}: {e}", self.dir.display())),
        };
        let mut sessions = Vec::new();
        let mut problems = Vec::new();
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    problems.push(Problem {
                        file: self.dir.clone(),
                        error: format!("cannot read an entry: {e}"),
                    });
                    continue;
                }
            };
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            // Temporary files of a write under way (or of a writer that died) are not sessions.
            if name.starts_with(TEMP_PREFIX) || !name.ends_with(".json") || !path.is_file() {
                continue;
            }
            match Self::read(&path) {
                Ok(s) => sessions.push(Summary {
                    title: s.shown_title(),
                    id: s.id,
                    created: s.created,
                    updated: s.updated,
                    model: s.model,
                    turns: s.turns.len(),
                    path,
                }),
                Err(error) => problems.push(Problem { file: path, error }),
            }
        }
        sessions.sort_by(|a, b| (b.updated, &b.id).cmp(&(a.updated, &a.id)));
        problems.sort_by(|a, b| a.file.cmp(&b.file));
        Ok((sessions, problems))
    }

    /// The most recently updated session that can be opened.
    pub fn latest(&self) -> Result<Session, String> {
        let (sessions, _) = self.list()?;
        let first = sessions
            .first()
            .ok_or_else(|| format!("no saved sessions in {}", self.dir.display()))?;
        self.open(&first.id)
    }

    /// Removes the file of session `id`.
    pub fn delete(&self, id: &str) -> Result<(), String> {
        let path = self
            .path_of(id)
            .ok_or_else(|| format!("\"{id}\" is not a session id"))?;
        std::fs::remove_file(&path).map_err(|e| format!("cannot delete {}: {e}", path.display()))
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
