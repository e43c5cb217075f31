//! Each model reply as the tokens it was written with, their alternatives, and the branches
//! taken from it. Pure data: the app decides when to branch, this keeps the texts straight.

use crate::engine::Candidate;
use crate::generate::trace::Trace;
use crate::generate::SamplingParams;
use crate::tokenizer::Tokenizer;

/// One written token.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    pub id: u32,
    /// The text released at this step: empty for a cut character or text held back in case it
    /// starts a stop sequence (a later piece carries it).
    pub text: String,
    /// Its probability under the raw softmax.
    pub prob: f32,
    /// The most likely tokens at this step.
    pub top: Vec<Candidate>,
    /// The settings it was drawn with.
    pub params: SamplingParams,
    /// What each sampling stage did at this step, when a view had recording on.
    pub trace: Option<Trace>,
}

/// One version of a reply.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Branch {
    pub pieces: Vec<Piece>,
    /// The whole reply: the pieces' texts and any text released when it ended.
    pub text: String,
}

/// The versions of one reply, and which one is shown (and goes into later prompts).
#[derive(Debug, Clone, PartialEq)]
pub struct Branches {
    all: Vec<Branch>,
    active: usize,
}

impl Default for Branches {
    fn default() -> Self {
        Self {
            all: vec![Branch::default()],
            active: 0,
        }
    }
}

impl Branches {
    /// Branches read back from a saved session; `active` is clamped to them. `None` when there
    /// are none.
    pub fn from_saved(all: Vec<Branch>, active: usize) -> Option<Self> {
        let active = active.min(all.len().checked_sub(1)?);
        Some(Self { all, active })
    }

    /// Every branch, in the order they were made.
    pub fn all(&self) -> &[Branch] {
        &self.all
    }

    pub fn current(&self) -> &Branch {
        &self.all[self.active]
    }

    pub fn pieces(&self) -> &[Piece] {
        &self.current().pieces
    }

    pub fn count(&self) -> usize {
        self.all.len()
    }

    /// The shown branch, counting from 0.
    pub fn active(&self) -> usize {
        self.active
    }

    /// A token arrived for the branch being written (always the shown one).
    pub fn push_piece(&mut self, piece: Piece) {
        let branch = &mut self.all[self.active];
        branch.text.push_str(&piece.text);
        branch.pieces.push(piece);
    }

    /// Text released at the end of the reply.
    pub fn push_text(&mut self, text: &str) {
        self.all[self.active].text.push_str(text);
    }

    /// Starts a new branch (and shows it): the first `at` pieces of the shown one, then
    /// `chosen` in place of the token at `at`. Returns the token ids the reply now starts with,
    /// or `None` when there is no token at `at`. With a tokenizer the text is decoded from the
    /// ids, so text the old branch still held back (a cut character, a possible stop sequence)
    /// is not lost.
    pub fn branch(
        &mut self,
        at: usize,
        chosen: &Candidate,
        tokenizer: Option<&Tokenizer>,
    ) -> Option<Vec<u32>> {
        let old = self.current().pieces.get(at)?.clone();
        let kept = &self.current().pieces[..at];
        let kept_text: String = kept.iter().map(|p| p.text.as_str()).collect();
        let mut ids: Vec<u32> = kept.iter().map(|p| p.id).collect();
        ids.push(chosen.id);
        let own_text = if chosen.ends { "" } else { &chosen.text };
        let decoded = tokenizer.map(|t| t.decode(&ids[..ids.len() - usize::from(chosen.ends)]));
        let chosen_text = decoded
            .as_deref()
            .and_then(|text| text.strip_prefix(kept_text.as_str()))
            .unwrap_or(own_text)
            .to_string();
        let mut pieces = kept.to_vec();
        pieces.push(Piece {
            id: chosen.id,
            text: chosen_text,
            prob: chosen.prob,
            top: old.top,
            params: old.params,
            // The step's trace still says what the sampler drew there before the choice.
            trace: old.trace,
        });
        let text = pieces.iter().map(|p| p.text.as_str()).collect();
        self.all.push(Branch { pieces, text });
        self.active = self.all.len() - 1;
        Some(ids)
    }

    /// Shows the next (`+1`) or previous (`-1`) branch, wrapping around.
    pub fn cycle(&mut self, direction: i32) {
        let n = self.all.len() as i64;
        self.active = (self.active as i64 + direction as i64).rem_euclid(n) as usize;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(id: u32, text: &str, prob: f32) -> Candidate {
        Candidate {
            id,
            text: text.into(),
            prob,
            ends: false,
        }
    }

    fn piece(id: u32, text: &str) -> Piece {
        Piece {
            id,
            text: text.into(),
            prob: 0.5,
            top: vec![candidate(id, text, 0.5), candidate(99, " else", 0.2)],
            params: SamplingParams::default(),
            trace: None,
        }
    }

    fn written() -> Branches {
        let mut b = Branches::default();
        for (id, text) in [(1, "Good"), (2, " my"), (3, " lord")] {
            b.push_piece(piece(id, text));
        }
        b.push_text("!");
        b
    }

    #[test]
    fn a_branch_keeps_the_prefix_and_the_old_branch_comes_back_unchanged() {
        let mut b = written();
        let before = b.current().clone();
        let ids = b.branch(1, &candidate(99, " else", 0.2), None).unwrap();
        assert_eq!(ids, vec![1, 99]);
        assert_eq!(b.current().text, "Good else");
        assert_eq!(b.pieces()[1].top, before.pieces[1].top, "same alternatives");
        assert_eq!((b.count(), b.active()), (2, 1));
        b.cycle(1);
        assert_eq!(b.current(), &before);
        b.cycle(-1);
        assert_eq!(b.current().text, "Good else");
        assert!(b.branch(7, &candidate(5, "x", 0.1), None).is_none());
        assert_eq!(b.count(), 2, "no token there: no branch");
    }

    #[test]
    fn choosing_the_end_of_text_adds_no_text() {
        let mut b = written();
        let end = Candidate {
            ends: true,
            ..candidate(0, "<|endoftext|>", 0.1)
        };
        assert_eq!(b.branch(2, &end, None).unwrap(), vec![1, 2, 0]);
        assert_eq!(b.current().text, "Good my");
    }
}
