//! The conversation's replies and versions as the session file keeps them, and back.

use std::collections::BTreeMap;

use super::forks::{Forks, Tail};
use super::replies::{Branch, Branches, Piece};
use super::CONTINUATION;
use crate::engine::chat::{Role, Turn};
use crate::generate::SamplingParams;
use crate::sessions::{SavedBranch, SavedFork, SavedReply, SavedVersion};

/// Each reply's branches, as saved.
pub fn save_replies(replies: &BTreeMap<usize, Branches>) -> Vec<SavedReply> {
    replies
        .iter()
        .map(|(&key, reply)| SavedReply {
            turn: (key != CONTINUATION).then_some(key),
            active: reply.active(),
            branches: reply
                .all()
                .iter()
                .map(|b| SavedBranch {
                    text: b.text.clone(),
                    tokens: b
                        .pieces
                        .iter()
                        .map(|p| (p.id, p.text.clone(), p.prob))
                        .collect(),
                })
                .collect(),
        })
        .collect()
}

/// Replies read back; one that names no model turn of `turns` (from index `first`) is left out.
/// The tokens get `settings` (the file keeps no per-token settings) and no alternatives.
pub fn restore_replies(
    saved: Vec<SavedReply>,
    turns: &[Turn],
    first: usize,
    settings: &SamplingParams,
) -> BTreeMap<usize, Branches> {
    let mut replies = BTreeMap::new();
    for reply in saved {
        let is_model_turn = |turn: usize| {
            turn >= first
                && turns
                    .get(turn - first)
                    .is_some_and(|t| t.role == Role::Model)
        };
        let key = match reply.turn {
            None => CONTINUATION,
            Some(turn) if is_model_turn(turn) => turn,
            Some(_) => continue,
        };
        let branches = reply
            .branches
            .into_iter()
            .map(|b| Branch {
                pieces: b
                    .tokens
                    .into_iter()
                    .map(|(id, text, prob)| Piece {
                        id,
                        text,
                        prob,
                        top: Vec::new(),
                        params: settings.clone(),
                        trace: None,
                    })
                    .collect(),
                text: b.text,
            })
            .collect();
        if let Some(branches) = Branches::from_saved(branches, reply.active) {
            replies.insert(key, branches);
        }
    }
    replies
}

/// Every turn's versions, as saved.
pub fn save_forks(forks: &BTreeMap<usize, Forks>) -> Vec<SavedFork> {
    forks
        .iter()
        .map(|(&turn, f)| SavedFork {
            turn,
            active: f.active(),
            versions: f
                .versions()
                .iter()
                .map(|tail| SavedVersion {
                    turns: tail.turns.clone(),
                    replies: save_replies(&tail.replies),
                    forks: save_forks(&tail.forks),
                })
                .collect(),
        })
        .collect()
}

/// Versions read back; ones whose turn is past `limit` turns (a damaged file) are left out.
pub fn restore_forks(
    saved: Vec<SavedFork>,
    limit: usize,
    settings: &SamplingParams,
) -> BTreeMap<usize, Forks> {
    let mut forks = BTreeMap::new();
    for fork in saved.into_iter().filter(|f| f.turn <= limit) {
        let versions = fork
            .versions
            .into_iter()
            .map(|v| {
                let end = fork.turn + v.turns.len();
                Tail {
                    replies: restore_replies(v.replies, &v.turns, fork.turn, settings),
                    forks: restore_forks(v.forks, end, settings)
                        .into_iter()
                        .filter(|(turn, _)| *turn > fork.turn)
                        .collect(),
                    turns: v.turns,
                }
            })
            .collect();
        if let Some(f) = Forks::from_saved(versions, fork.active) {
            forks.insert(fork.turn, f);
        }
    }
    forks
}
