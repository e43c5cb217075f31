//! Laying a request out in tokens: a chat's turns in the model's chat format, or the end of a
//! document, fitted to the window with room kept for the reply.

use super::chat::{chat_prompt, ReplyTokens, TextSpan};
use super::messages::{AttentionMap, Prompt};
use crate::generate::session::Session;

/// A prompt in tokens, as it goes to the model.
pub(super) struct LaidOut {
    pub tokens: Vec<u32>,
    pub stop: Vec<String>,
    pub dropped_turns: usize,
    pub dropped_tokens: usize,
    /// Where the user's own texts lie in `tokens` (chat messages, or the document).
    pub user_texts: Vec<TextSpan>,
}

/// Lays out `prompt` leaving `reserve` tokens of the window for the reply.
pub(super) fn lay_out(
    session: &Session,
    prompt: &Prompt,
    written: &ReplyTokens,
    reserve: usize,
) -> crate::Result<LaidOut> {
    let window = session.window();
    Ok(match prompt {
        Prompt::Chat {
            format,
            system,
            turns,
        } => {
            let laid_out = chat_prompt(
                session.tokenizer(),
                session.eos_id(),
                *format,
                system,
                turns,
                written,
                window,
                reserve,
            )?;
            LaidOut {
                tokens: laid_out.tokens,
                stop: format.stop_sequences(),
                dropped_turns: laid_out.dropped_turns,
                dropped_tokens: 0,
                user_texts: laid_out.user_texts,
            }
        }
        Prompt::Complete { text } => {
            // Keep the end of a long text, with room left for the continuation.
            let all = session.tokenizer().encode(text)?;
            let budget = window.saturating_sub(reserve).max(1);
            let cut = all.len().saturating_sub(budget);
            let document = TextSpan {
                turn: None,
                text: text.clone(),
                ids: all.clone(),
                text_at: 0,
                first: -(cut as isize),
            };
            LaidOut {
                tokens: all[cut..].to_vec(),
                stop: vec![],
                dropped_turns: 0,
                dropped_tokens: cut,
                user_texts: vec![document],
            }
        }
    })
}

/// Room kept for a reply: what was asked for, but never more than half the window.
pub(super) fn reply_reserve(session: &Session, max_tokens: usize) -> usize {
    max_tokens.min(session.window() / 2)
}

/// The attention of the last of `reply` after `prompt`, laid out as for writing it (the window's
/// most recent tokens when they do not all fit).
pub(super) fn attention(
    session: &Session,
    prompt: &Prompt,
    reply: &[u32],
    written: &ReplyTokens,
) -> crate::Result<AttentionMap> {
    let reserve = reply_reserve(session, reply.len());
    let mut ids = lay_out(session, prompt, written, reserve)?.tokens;
    ids.extend_from_slice(reply);
    let cut = ids.len().saturating_sub(session.window());
    ids.drain(..cut);
    let weights = crate::engine::inspect::last_token_attention(session.model(), &ids)?;
    let tokenizer = session.tokenizer();
    let tokens = ids.iter().map(|&id| tokenizer.token_text(id)).collect();
    Ok(AttentionMap { tokens, weights })
}
