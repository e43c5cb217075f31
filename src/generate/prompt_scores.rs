//! What the model made of each prompt token (the user's own text), computed from the prefill
//! that happens anyway: the output head runs on every newly prefilled row, and each row is
//! reduced at once to the score of the token after it, so the prompt never runs twice.
//!
//! Kept per cached position beside the cache, so a later prompt that shares a prefix keeps the
//! scores already known and computes only the new positions.

use crate::error::Result;
use crate::generate::token_score::{token_score, TokenScore};
use crate::model::{Gpt2, KvCache};

/// How many alternatives each prompt token is scored with (the views show ten).
pub const PROMPT_TOP: usize = 10;

/// What is known of the token at one cached position.
#[derive(Debug, Clone, PartialEq)]
enum Known {
    /// Prefilled while no view asked for scores.
    Unknown,
    /// Drawn by the sampler and then run: a reply's token, described by the step that drew it.
    Drawn,
    /// Scored from the row before it; `None` for the first token of the context.
    Scored(Option<TokenScore>),
}

/// One [`Known`] per cached token, in order (always as long as the cache).
#[derive(Debug, Default)]
pub(crate) struct PromptScores {
    known: Vec<Known>,
}

/// What one row of the prefill is reduced to.
enum Row {
    /// The score of the token this row predicts.
    Score(TokenScore),
    /// The last row: the logits for the token after the prompt.
    Logits(Vec<f32>),
}

impl PromptScores {
    pub fn clear(&mut self) {
        self.known.clear();
    }

    /// After a prefill without scores: `kept` positions stay, `ran` new ones are unknown.
    pub fn ran_unscored(&mut self, kept: usize, ran: usize) {
        self.known.truncate(kept);
        self.known.extend(std::iter::repeat_n(Known::Unknown, ran));
    }

    /// The last position was a drawn token (run by a decode step).
    pub fn mark_last_drawn(&mut self) {
        if let Some(last) = self.known.last_mut() {
            *last = Known::Drawn;
        }
    }

    /// How many leading positions are scored or drawn: a scoring prefill keeps those.
    fn known_prefix(&self) -> usize {
        self.known
            .iter()
            .take_while(|k| !matches!(k, Known::Unknown))
            .count()
    }

    /// The scores of positions `0..n` (`None` where there is none: the first token, a drawn
    /// one, or one prefilled while no view asked).
    pub fn scores(&self, n: usize) -> Vec<Option<TokenScore>> {
        self.known
            .iter()
            .take(n)
            .map(|k| match k {
                Known::Scored(score) => score.clone(),
                _ => None,
            })
            .collect()
    }

    /// Whether the first `len` positions are all scored or drawn.
    pub fn known_through(&self, len: usize) -> bool {
        self.known_prefix() >= len
    }

    /// Where a scoring prefill of `len` tokens, `shared` of them already cached, starts: after
    /// the known positions, and one row earlier when the first token it runs has no score yet
    /// (the row before it predicts it). At least the last token runs, for its logits.
    pub fn scored_start(&self, shared: usize, len: usize) -> usize {
        let usable = self.known_prefix();
        let start = shared.min(len - 1).min(usable);
        let known_at_start = start < shared && start < usable;
        start - usize::from(!known_at_start && start > 0)
    }

    /// Runs `tokens[start..]` after the `start` cached ones through the model with the head on
    /// every row, keeps the score of each token from `start + 1` on (and of the first token,
    /// `None`, when `start` is 0), and returns the logits after the last token.
    pub fn prefill(
        &mut self,
        model: &Gpt2,
        cache: &mut KvCache,
        tokens: &[u32],
        start: usize,
    ) -> Result<Vec<f32>> {
        let n = tokens.len() - start;
        let rows = model.forward_rows(&tokens[start..], cache, 0..n, |r, logits| {
            match tokens.get(start + r + 1) {
                Some(&next) => Row::Score(token_score(logits, next, PROMPT_TOP)),
                None => Row::Logits(logits.to_vec()),
            }
        })?;
        self.known.truncate(start + 1);
        if start == 0 {
            self.known = vec![Known::Scored(None)];
        }
        let mut last = Vec::new();
        for row in rows {
            match row {
                Row::Score(score) => self.known.push(Known::Scored(Some(score))),
                Row::Logits(logits) => last = logits,
            }
        }
        Ok(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(known: Vec<Known>) -> PromptScores {
        PromptScores { known }
    }

    #[test]
    fn a_scoring_prefill_starts_after_what_is_known() {
        let some = || Known::Scored(None);
        // Nothing cached: from the start.
        assert_eq!(scores(vec![]).scored_start(0, 5), 0);
        // All five known and cached: only the last runs again (for its logits), keeping its score.
        let all = scores(vec![some(), some(), Known::Drawn, some(), some()]);
        assert!(all.known_through(5));
        assert_eq!(all.scored_start(5, 5), 4);
        // Three more tokens after five known ones: the first new one needs row 4.
        assert_eq!(all.scored_start(5, 8), 4);
        // Unknown from position 2: rows from 1 on run again.
        let gap = scores(vec![some(), some(), Known::Unknown, Known::Unknown]);
        assert!(!gap.known_through(3));
        assert_eq!(gap.scored_start(4, 6), 1);
        // A token that differs from the cache at position 2: row 1 predicts it.
        let known = scores(vec![some(), some(), some()]);
        assert_eq!(known.scored_start(2, 3), 1);
    }
}
