//! Transcripts: saving and loading a session as JSON, exporting the conversation as Markdown.

use serde::{Deserialize, Serialize};

use super::{App, Mode};
use crate::atomic_file::write_atomic;
use crate::engine::chat::{to_markdown, ChatFormat, Turn};
use crate::generate::SamplingParams;

/// A saved session: the conversation and the settings it was made with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Transcript {
    pub model: String,
    pub mode: Mode,
    pub format: ChatFormat,
    pub system: String,
    pub turns: Vec<Turn>,
    #[serde(default)]
    pub document: String,
    pub settings: SamplingParams,
}

impl App {
    pub fn transcript(&self) -> Transcript {
        let c = &self.conversation;
        Transcript {
            model: self
                .engine
                .model
                .as_ref()
                .map(|m| m.name.clone())
                .unwrap_or_default(),
            mode: c.mode,
            format: c.format,
            system: c.system.clone(),
            turns: c.turns.clone(),
            document: c.document.clone(),
            settings: self.params.clone(),
        }
    }

    pub(super) fn save(&self, path: &str) -> Result<String, String> {
        if path.is_empty() {
            return Err("usage: /save PATH".into());
        }
        let json = serde_json::to_string_pretty(&self.transcript()).expect("plain data");
        write_atomic(std::path::Path::new(path), json.as_bytes())
            .map_err(|e| format!("cannot write {path}: {e}"))?;
        Ok(format!("saved to {path}"))
    }

    pub(super) fn load(&mut self, path: &str) -> Result<String, String> {
        if self.is_generating() {
            return Err("stop the generation first (Esc)".into());
        }
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        let t: Transcript = serde_json::from_str(&text)
            .map_err(|e| format!("{path}: not a gpt2-tui transcript: {e}"))?;
        t.settings.validate().map_err(|e| format!("{path}: {e}"))?;
        let c = &mut self.conversation;
        c.mode = t.mode;
        c.format = t.format;
        c.system = t.system;
        c.turns = t.turns;
        c.replies.clear();
        c.forks.clear();
        c.document = t.document;
        c.continuation_start = None;
        self.inspect = None;
        self.params = t.settings;
        Ok(format!("loaded {path}"))
    }

    pub(super) fn export(&self, path: &str) -> Result<String, String> {
        if path.is_empty() {
            return Err("usage: /export PATH".into());
        }
        let name = self
            .engine
            .model
            .as_ref()
            .map(|m| m.name.as_str())
            .unwrap_or("GPT-2");
        let c = &self.conversation;
        let text = match c.mode {
            Mode::Chat => to_markdown(name, &c.system, &c.turns),
            Mode::Complete => format!("# Text continued by {name}\n\n{}\n", c.document),
        };
        write_atomic(std::path::Path::new(path), text.as_bytes())
            .map_err(|e| format!("cannot write {path}: {e}"))?;
        Ok(format!("exported to {path}"))
    }
}
