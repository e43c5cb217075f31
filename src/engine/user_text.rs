//! The user's own text in a prompt, token by token, with what the model expected at each token
//! (from the scores of the prefill): what the probability colours and the token cursor show of
//! chat messages and of the completion document.

use super::chat::TextSpan;
use super::messages::{Candidate, PromptPart, PromptScore, PromptToken};
use crate::generate::token_score::TokenScore;
use crate::tokenizer::Tokenizer;

/// Each text of `spans` as tokens holding its pieces, scored from `scores` (one per position of
/// the prompt; `None` where unscored).
pub(super) fn user_parts(
    tokenizer: &Tokenizer,
    eos: u32,
    spans: &[TextSpan],
    scores: &[Option<TokenScore>],
) -> Vec<PromptPart> {
    spans
        .iter()
        .map(|span| PromptPart {
            turn: span.turn,
            text: span.text.clone(),
            tokens: span_tokens(tokenizer, span, |position| {
                let score = usize::try_from(position).ok().and_then(|p| scores.get(p))?;
                score.as_ref().map(|s| prompt_score(tokenizer, eos, s))
            }),
        })
        .collect()
}

/// The tokens of `span` that hold part of its text, each with its piece of the text (cut at
/// character boundaries, so the pieces rebuild the text) and `score(position in the prompt)`.
fn span_tokens(
    tokenizer: &Tokenizer,
    span: &TextSpan,
    score: impl Fn(isize) -> Option<PromptScore>,
) -> Vec<PromptToken> {
    let text = span.text.as_str();
    let text_end = span.text_at + text.len();
    let mut at = 0;
    let mut given = 0;
    let mut tokens = Vec::new();
    for (j, &id) in span.ids.iter().enumerate() {
        let end = at + tokenizer.token_bytes(id).len();
        if end > span.text_at && at < text_end {
            let mut upto = (end - span.text_at).min(text.len());
            while !text.is_char_boundary(upto) {
                upto -= 1;
            }
            let piece = text.get(given..upto.max(given)).unwrap_or_default();
            given = given.max(upto);
            tokens.push(PromptToken {
                id,
                text: piece.to_string(),
                score: score(span.first + j as isize),
            });
        }
        at = end;
    }
    tokens
}

fn prompt_score(tokenizer: &Tokenizer, eos: u32, score: &TokenScore) -> PromptScore {
    PromptScore {
        prob: score.logprob.exp(),
        rank: score.rank,
        entropy: score.entropy,
        top: score
            .top
            .iter()
            .map(|&(id, logprob)| Candidate {
                id,
                text: tokenizer.token_text(id),
                prob: logprob.exp(),
                ends: id == eos,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokenizer() -> Tokenizer {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/tiny-gpt2/tokenizer.json"
        );
        Tokenizer::from_json_file(std::path::Path::new(path)).unwrap()
    }

    #[test]
    fn a_span_splits_into_pieces_that_rebuild_its_text() {
        let tokenizer = tokenizer();
        // "é" is two bytes, which byte-level BPE may split; the transcript puts "User: " first.
        let text = "naïve café ok";
        let ids = tokenizer.encode(&format!("User: {text}\n")).unwrap();
        let span = TextSpan {
            turn: Some(0),
            text: text.into(),
            ids: ids.clone(),
            text_at: 6,
            first: -1,
        };
        let tokens = span_tokens(&tokenizer, &span, |p| {
            (p >= 0).then(|| PromptScore {
                prob: p as f32,
                rank: 1,
                entropy: 0.0,
                top: vec![],
            })
        });
        let rebuilt: String = tokens.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(rebuilt, text);
        // "User", ":" and "\n" hold none of the text.
        assert!(tokens.len() <= ids.len() - 3, "{tokens:?}");
        // Positions follow the ids: "User" is at -1 (cut), so " na..." is at 1.
        let first = tokens.first().unwrap();
        assert_eq!(first.score.as_ref().map(|s| s.prob), Some(1.0));
    }
}
