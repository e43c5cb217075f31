//! Saved conversations ("sessions"): one JSON file per conversation in the data folder, written
//! atomically ([`crate::atomic_file`]), listed and opened by [`store::Store`]. Used by the interface
//! (autosave, `/sessions`, `--resume`) and by `gpt2-tui sessions`.

pub mod store;

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::engine::chat::{ChatFormat, Turn};
use crate::generate::SamplingParams;
pub use store::{Problem, Store, Summary};

/// The newest session file format this build reads; files with a higher number are not
/// opened. Format 2 added `forks` (versions of the chat made by editing a turn); a session
/// without them is still written as format 1, so older builds keep reading it.
pub const FORMAT_VERSION: u32 = 2;

/// The format of a session that has no forks (what format 1 readers understand).
pub const FORMAT_WITHOUT_FORKS: u32 = 1;

/// How many words of the first message make a title.
const TITLE_WORDS: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Chat,
    Complete,
}

/// One saved conversation: everything needed to carry on with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub version: u32,
    pub id: String,
    /// The first words of the first message, unless renamed.
    pub title: String,
    #[serde(default)]
    pub renamed: bool,
    /// Seconds since the Unix epoch.
    pub created: u64,
    pub updated: u64,
    /// The model it was last written with.
    pub model: String,
    pub mode: Mode,
    pub format: ChatFormat,
    pub system: String,
    pub turns: Vec<Turn>,
    #[serde(default)]
    pub document: String,
    #[serde(default)]
    pub continuation_start: Option<usize>,
    pub settings: SamplingParams,
    /// The model replies' branches (token level), by turn.
    #[serde(default)]
    pub replies: Vec<SavedReply>,
    /// The other versions of the chat from a turn on (format 2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forks: Vec<SavedFork>,
}

/// The versions of the chat from one turn on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedFork {
    pub turn: usize,
    /// The version shown; its entry in `versions` is empty (it is the session's own turns).
    pub active: usize,
    pub versions: Vec<SavedVersion>,
}

/// One version of the chat from a turn on: its turns (from that turn), their replies'
/// branches and the versions of later turns, with turn indices as in the whole chat.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SavedVersion {
    pub turns: Vec<Turn>,
    #[serde(default)]
    pub replies: Vec<SavedReply>,
    #[serde(default)]
    pub forks: Vec<SavedFork>,
}

/// The branches of one model reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedReply {
    /// The turn it answers in; `None` for completion mode's continuation.
    pub turn: Option<usize>,
    /// The branch shown.
    pub active: usize,
    pub branches: Vec<SavedBranch>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedBranch {
    pub text: String,
    /// Each token: id, released text, probability (raw softmax).
    pub tokens: Vec<(u32, String, f32)>,
}

impl Session {
    /// A new, empty session with a fresh id.
    pub fn new(model: &str, mode: Mode, format: ChatFormat, settings: SamplingParams) -> Self {
        let now = now();
        Self {
            version: FORMAT_WITHOUT_FORKS,
            id: new_id(now),
            title: String::new(),
            renamed: false,
            created: now,
            updated: now,
            model: model.into(),
            mode,
            format,
            system: String::new(),
            turns: Vec::new(),
            document: String::new(),
            continuation_start: None,
            settings,
            replies: Vec::new(),
            forks: Vec::new(),
        }
    }

    /// Whether there is anything to keep (an empty conversation is not written).
    pub fn is_empty(&self) -> bool {
        self.turns.is_empty() && self.document.is_empty()
    }

    /// The title shown: the name given, or the first words of the first message.
    pub fn shown_title(&self) -> String {
        if self.renamed {
            return self.title.clone();
        }
        let first = self
            .turns
            .first()
            .map(|t| t.text.as_str())
            .unwrap_or(&self.document);
        title_of(first)
    }
}

/// The first words of a text, on one line.
pub fn title_of(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut title = words[..words.len().min(TITLE_WORDS)].join(" ");
    if words.len() > TITLE_WORDS {
        title.push('…');
    }
    title
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A new id: the time (sortable) and a random part, so two instances started in the same second
/// never pick the same one.
pub fn new_id(now: u64) -> String {
    let (date, time) = date_time(now);
    let compact = |s: &str| s.replace(['-', ':'], "");
    format!(
        "{}-{}-{:06x}",
        compact(&date),
        compact(&time),
        rand::random::<u32>() & 0xff_ffff
    )
}

/// `YYYY-MM-DD` and `HH:MM:SS` (UTC) of a Unix time.
pub fn date_time(secs: u64) -> (String, String) {
    let days = (secs / 86_400) as i64;
    let rest = secs % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        format!("{year:04}-{month:02}-{day:02}"),
        format!(
            "{:02}:{:02}:{:02}",
            rest / 3600,
            rest % 3600 / 60,
            rest % 60
        ),
    )
}

/// `YYYY-MM-DD HH:MM` (UTC), for listings.
pub fn shown_time(secs: u64) -> String {
    let (date, time) = date_time(secs);
    format!("{date} {}", &time[..5])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_titles() {
        assert_eq!(
            date_time(0),
            ("1970-01-01".to_string(), "00:00:00".to_string())
        );
        assert_eq!(shown_time(1_796_161_145), "2026-12-01 21:39");
        assert_eq!(title_of("  Hello\nthere  "), "Hello there");
        assert_eq!(
            title_of("one two three four five six seven eight nine"),
            "one two three four five six seven eight…"
        );
        let id = new_id(1_796_161_145);
        assert!(id.starts_with("20261201-213905-"), "{id}");
        assert_ne!(new_id(0), new_id(0), "random part");
    }
}
