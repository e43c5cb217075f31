//! Versions of a chat from one turn on. Editing turn `i` keeps what was there (the old turn
//! `i`, the turns after it, their replies' token branches and their own versions) as another
//! version of turn `i`; the message cursor's b/B switches between them. Pure data: the app
//! decides when to fork, this keeps the turns and their replies together.

use std::collections::BTreeMap;

use super::replies::Branches;
use super::Conversation;
use crate::engine::chat::Turn;

/// The chat from one turn on: its turns, and what belongs to them (keys are turn indices, as in
/// the conversation, since every version of turn `i` starts at index `i`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tail {
    pub turns: Vec<Turn>,
    /// The replies' token branches, for turns from `i` on.
    pub replies: BTreeMap<usize, Branches>,
    /// Versions of later turns (after `i`) within this version.
    pub forks: BTreeMap<usize, Forks>,
}

/// The versions of the chat from one turn on, and which one is shown.
#[derive(Debug, Clone, PartialEq)]
pub struct Forks {
    /// Every version in the order they were made; the shown one's slot is empty (its turns are
    /// the conversation's).
    versions: Vec<Tail>,
    active: usize,
}

impl Forks {
    /// Versions read back from a saved session; `None` when fewer than two (nothing to switch).
    pub fn from_saved(versions: Vec<Tail>, active: usize) -> Option<Self> {
        if versions.len() < 2 {
            return None;
        }
        let active = active.min(versions.len() - 1);
        Some(Self { versions, active })
    }

    /// Every version (the shown one empty).
    pub fn versions(&self) -> &[Tail] {
        &self.versions
    }

    pub fn count(&self) -> usize {
        self.versions.len()
    }

    /// The shown version, counting from 0.
    pub fn active(&self) -> usize {
        self.active
    }
}

impl Conversation {
    /// Takes the turns from `at` on out of the conversation, with their replies and the
    /// versions of later turns.
    fn take_tail(&mut self, at: usize) -> Tail {
        let at = at.min(self.turns.len());
        Tail {
            turns: self.turns.split_off(at),
            replies: self.replies.split_off(&at),
            forks: self.forks.split_off(&(at + 1)),
        }
    }

    /// Lays `tail` after the first `at` turns.
    fn put_tail(&mut self, at: usize, tail: Tail) {
        self.turns.truncate(at);
        self.turns.extend(tail.turns);
        self.replies.extend(tail.replies);
        self.forks.extend(tail.forks);
    }

    /// Keeps the chat from turn `at` on as a version of that turn and leaves the first `at`
    /// turns, for a new version of turn `at` to be added.
    pub fn fork_at(&mut self, at: usize) {
        let old = self.take_tail(at);
        let forks = self.forks.entry(at).or_insert_with(|| Forks {
            versions: vec![Tail::default()],
            active: 0,
        });
        forks.versions[forks.active] = old;
        forks.versions.push(Tail::default());
        forks.active = forks.versions.len() - 1;
    }

    /// Shows the next (`+1`) or previous (`-1`) version of the chat from turn `at` on,
    /// wrapping around. Returns `(shown, count)` counting from 1, or `None` when the turn has
    /// one version.
    pub fn switch_version(&mut self, at: usize, direction: i32) -> Option<(usize, usize)> {
        let count = self.forks.get(&at).map_or(0, Forks::count);
        if count < 2 || at > self.turns.len() {
            return None;
        }
        let live = self.take_tail(at);
        let forks = self.forks.get_mut(&at).expect("checked above");
        forks.versions[forks.active] = live;
        forks.active = (forks.active as i64 + direction as i64).rem_euclid(count as i64) as usize;
        let shown = std::mem::take(&mut forks.versions[forks.active]);
        let active = forks.active;
        self.put_tail(at, shown);
        Some((active + 1, count))
    }

    /// The version of turn `index` shown and how many there are (counting from 1), when it
    /// has more than one.
    pub fn version_of(&self, index: usize) -> Option<(usize, usize)> {
        self.forks
            .get(&index)
            .filter(|f| f.count() > 1)
            .map(|f| (f.active() + 1, f.count()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::chat::{ChatFormat, Role};
    use crate::sessions::Mode;

    fn turn(role: Role, text: &str) -> Turn {
        Turn {
            role,
            text: text.into(),
        }
    }

    fn chat(texts: &[&str]) -> Conversation {
        let mut c = Conversation::new(Mode::Chat, ChatFormat::Dialogpt, String::new());
        for (i, text) in texts.iter().enumerate() {
            let role = if i % 2 == 0 { Role::User } else { Role::Model };
            c.turns.push(turn(role, text));
            if role == Role::Model {
                c.replies.insert(i, Branches::default());
            }
        }
        c
    }

    fn texts(c: &Conversation) -> Vec<&str> {
        c.turns.iter().map(|t| t.text.as_str()).collect()
    }

    #[test]
    fn editing_a_turn_keeps_the_old_chat_as_a_version_that_comes_back_whole() {
        let mut c = chat(&["hi", "hello", "how are you", "fine"]);
        c.fork_at(2);
        assert_eq!(texts(&c), ["hi", "hello"]);
        assert_eq!(c.replies.keys().copied().collect::<Vec<_>>(), [1]);
        c.turns.push(turn(Role::User, "bye"));
        c.turns.push(turn(Role::Model, "ciao"));
        assert_eq!(c.version_of(2), Some((2, 2)));
        // A version of a later turn inside the new version.
        c.fork_at(3);
        c.turns.push(turn(Role::Model, "see you"));
        assert_eq!(c.version_of(3), Some((2, 2)));
        assert_eq!(c.switch_version(2, 1), Some((1, 2)));
        assert_eq!(texts(&c), ["hi", "hello", "how are you", "fine"]);
        assert_eq!(c.replies.keys().copied().collect::<Vec<_>>(), [1, 3]);
        assert_eq!(
            c.version_of(3),
            None,
            "the later fork went with its version"
        );
        assert_eq!(c.switch_version(2, -1), Some((2, 2)));
        assert_eq!(texts(&c), ["hi", "hello", "bye", "see you"]);
        assert_eq!(c.version_of(3), Some((2, 2)));
        assert_eq!(c.switch_version(3, 1), Some((1, 2)));
        assert_eq!(texts(&c), ["hi", "hello", "bye", "ciao"]);
        assert_eq!(
            c.switch_version(1, 1),
            None,
            "one version: nothing to switch"
        );
    }
}
