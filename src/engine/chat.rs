//! A chat as the model sees it: turns, the prompt formats, and fitting them in the window.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::tokenizer::Tokenizer;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Model,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turn {
    pub role: Role,
    pub text: String,
}

/// How turns are laid out for the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatFormat {
    /// Turns separated by `<|endoftext|>`, as DialoGPT was trained; the reply ends at the next one.
    Dialogpt,
    /// A short preamble and `User:` / `GPT-2:` lines; the reply ends at the next `User:` line.
    Transcript,
}

impl ChatFormat {
    /// `auto`: DialoGPT's format for the bundled model and DialoGPT checkpoints, else the transcript.
    pub fn choose(setting: &str, model_name: &str) -> Self {
        match setting {
            "dialogpt" => Self::Dialogpt,
            "transcript" => Self::Transcript,
            _ => {
                let name = model_name.to_ascii_lowercase();
                if name == "bundled" || name.contains("dialogpt") || name.contains("shakespeare") {
                    Self::Dialogpt
                } else {
                    Self::Transcript
                }
            }
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Dialogpt => "dialogpt",
            Self::Transcript => "transcript",
        }
    }

    /// Text that ends a reply besides `<|endoftext|>`.
    pub fn stop_sequences(self) -> Vec<String> {
        match self {
            Self::Dialogpt => vec![],
            Self::Transcript => vec!["\nUser:".into()],
        }
    }
}

const TRANSCRIPT_PREAMBLE: &str =
    "A conversation between a curious user and GPT-2, a language model.\n";

/// The token ids of replies the model wrote, by their text. A later prompt repeats a reply as
/// exactly these tokens, which are the ones in the cache: encoding the text again can split it
/// differently (BPE does not round-trip every sequence), and the cached prefix would end there.
#[derive(Debug, Default, Clone)]
pub struct ReplyTokens {
    entries: VecDeque<(String, Vec<u32>)>,
}

impl ReplyTokens {
    /// How many replies are remembered (a long chat drops its oldest turns anyway).
    const CAPACITY: usize = 256;

    /// Remembers the reply `text` written as `ids`. The ids may run past the text (a stop
    /// sequence's tokens, a held-back partial character): only the ids that decode to exactly
    /// the text are kept; when none do, nothing is remembered.
    pub fn remember(&mut self, tokenizer: &Tokenizer, text: &str, ids: &[u32]) {
        let Some(k) = (0..=ids.len())
            .rev()
            .take(8)
            .find(|&k| tokenizer.decode(&ids[..k]) == text)
        else {
            return;
        };
        self.entries.retain(|(t, _)| t != text);
        self.entries
            .push_back((text.to_string(), ids[..k].to_vec()));
        if self.entries.len() > Self::CAPACITY {
            self.entries.pop_front();
        }
    }

    pub fn get(&self, text: &str) -> Option<&[u32]> {
        self.entries
            .iter()
            .rev()
            .find(|(t, _)| t == text)
            .map(|(_, ids)| ids.as_slice())
    }
}

/// A prompt ready to run, and how many of the oldest turns had to be left out to fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatPrompt {
    pub tokens: Vec<u32>,
    pub dropped_turns: usize,
    /// Where each kept user message's text lies in `tokens`, for the views of the prompt.
    pub user_texts: Vec<TextSpan>,
}

/// A text of the user's inside a prompt: the tokens that spell it (with what the format puts
/// around it), where the text starts in their bytes, and where they start in the prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextSpan {
    /// The chat turn's index; `None` for completion mode's document.
    pub turn: Option<usize>,
    /// The text as the model read it (a chat message trimmed).
    pub text: String,
    pub ids: Vec<u32>,
    /// Byte offset of `text` in the decoded `ids` (after `User: ` in the transcript format).
    pub text_at: usize,
    /// Position of `ids[0]` in the prompt; below 0 when the prompt's start was cut to fit.
    pub first: isize,
}

/// Lays out `turns` (ending with the user's message) for the model, leaving `reserve` tokens of
/// the window free for the reply. The oldest turns go first when it does not fit; the last user
/// message always stays (cut to its end if it alone is too long). Replies found in `written`
/// are laid out as the tokens the model wrote, so the cache is reused past them.
#[allow(clippy::too_many_arguments)]
pub fn chat_prompt(
    tokenizer: &Tokenizer,
    eos: u32,
    format: ChatFormat,
    system: &str,
    turns: &[Turn],
    written: &ReplyTokens,
    window: usize,
    reserve: usize,
) -> Result<ChatPrompt> {
    let budget = window.saturating_sub(reserve).max(1);
    let head = match format {
        ChatFormat::Dialogpt if system.is_empty() => vec![],
        ChatFormat::Dialogpt => with_eos(tokenizer.encode(system)?, eos),
        ChatFormat::Transcript => {
            let mut preamble = TRANSCRIPT_PREAMBLE.to_string();
            if !system.is_empty() {
                preamble += system.trim_end();
                preamble.push('\n');
            }
            preamble.push('\n');
            tokenizer.encode(&preamble)?
        }
    };
    let encoded: Vec<Vec<u32>> = turns
        .iter()
        .map(|t| encode_turn(tokenizer, eos, format, t, written))
        .collect::<Result<_>>()?;
    let tail = match format {
        ChatFormat::Dialogpt => vec![],
        ChatFormat::Transcript => tokenizer.encode("GPT-2:")?,
    };
    let mut first = 0;
    let total = |first: usize| {
        head.len() + encoded[first..].iter().map(Vec::len).sum::<usize>() + tail.len()
    };
    while first + 1 < encoded.len() && total(first) > budget {
        first += 1;
    }
    let mut tokens: Vec<u32> = head
        .iter()
        .chain(encoded[first..].iter().flatten())
        .chain(&tail)
        .copied()
        .collect();
    let cut = tokens.len().saturating_sub(budget);
    tokens.drain(..cut);
    let mut at = head.len() as isize - cut as isize;
    let mut user_texts = Vec::new();
    for (index, ids) in encoded.iter().enumerate().skip(first) {
        if turns[index].role == Role::User {
            user_texts.push(TextSpan {
                turn: Some(index),
                text: turns[index].text.trim().to_string(),
                ids: ids.clone(),
                text_at: user_text_at(format),
                first: at,
            });
        }
        at += ids.len() as isize;
    }
    Ok(ChatPrompt {
        tokens,
        dropped_turns: first,
        user_texts,
    })
}

/// Where a user message's text starts in its turn as laid out (see `encode_turn`).
fn user_text_at(format: ChatFormat) -> usize {
    match format {
        ChatFormat::Dialogpt => 0,
        ChatFormat::Transcript => "User: ".len(),
    }
}

fn with_eos(mut tokens: Vec<u32>, eos: u32) -> Vec<u32> {
    tokens.push(eos);
    tokens
}

fn encode_turn(
    tokenizer: &Tokenizer,
    eos: u32,
    format: ChatFormat,
    turn: &Turn,
    written: &ReplyTokens,
) -> Result<Vec<u32>> {
    let known = match turn.role {
        Role::Model => written.get(&turn.text),
        Role::User => None,
    };
    if let Some(ids) = known {
        return Ok(match format {
            ChatFormat::Dialogpt => with_eos(ids.to_vec(), eos),
            ChatFormat::Transcript => {
                let mut tokens = tokenizer.encode("GPT-2:")?;
                tokens.extend_from_slice(ids);
                tokens.extend(tokenizer.encode("\n")?);
                tokens
            }
        });
    }
    Ok(match format {
        ChatFormat::Dialogpt => with_eos(tokenizer.encode(turn.text.trim())?, eos),
        ChatFormat::Transcript => {
            let name = match turn.role {
                Role::User => "User:",
                Role::Model => "GPT-2:",
            };
            tokenizer.encode(&format!("{name} {}\n", turn.text.trim()))?
        }
    })
}

/// The conversation as Markdown, for `/export`.
pub fn to_markdown(model: &str, system: &str, turns: &[Turn]) -> String {
    let mut out = format!("# Conversation with {model}\n\n");
    if !system.is_empty() {
        out += &format!("> {}\n\n", system.replace('\n', "\n> "));
    }
    for turn in turns {
        let who = match turn.role {
            Role::User => "**You**",
            Role::Model => "**GPT-2**",
        };
        out += &format!("{who}: {}\n\n", turn.text.trim());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_format_follows_the_model() {
        assert_eq!(ChatFormat::choose("auto", "bundled"), ChatFormat::Dialogpt);
        assert_eq!(
            ChatFormat::choose("auto", "DialoGPT-medium"),
            ChatFormat::Dialogpt
        );
        assert_eq!(
            ChatFormat::choose("auto", "gpt2-large"),
            ChatFormat::Transcript
        );
        assert_eq!(
            ChatFormat::choose("transcript", "bundled"),
            ChatFormat::Transcript
        );
    }

    #[test]
    fn markdown_export_names_the_speakers() {
        let turns = [
            Turn {
                role: Role::User,
                text: "Hi".into(),
            },
            Turn {
                role: Role::Model,
                text: "Hello".into(),
            },
        ];
        let md = to_markdown("m", "", &turns);
        assert!(
            md.contains("**You**: Hi") && md.contains("**GPT-2**: Hello"),
            "{md}"
        );
    }

    #[test]
    fn a_remembered_reply_keeps_its_own_tokens() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/tiny-gpt2/tokenizer.json"
        );
        let tokenizer = Tokenizer::from_json_file(std::path::Path::new(path)).unwrap();
        let canonical = tokenizer.encode(" there").unwrap();
        // " there" written as " the" + "re": not how the text encodes, but what is in the cache.
        let mut written: Vec<u32> = tokenizer.encode(" the").unwrap();
        written.extend(tokenizer.encode("re").unwrap());
        assert_ne!(written, canonical);
        let mut memory = ReplyTokens::default();
        // With a stop sequence's tokens after it: those are left out.
        let mut ids = written.clone();
        ids.extend(tokenizer.encode("\nUser:").unwrap());
        memory.remember(&tokenizer, " there", &ids);
        assert_eq!(memory.get(" there"), Some(written.as_slice()));
        let turns = [
            Turn {
                role: Role::User,
                text: "hi".into(),
            },
            Turn {
                role: Role::Model,
                text: " there".into(),
            },
            Turn {
                role: Role::User,
                text: "so".into(),
            },
        ];
        let eos = 50256;
        let laid = chat_prompt(
            &tokenizer,
            eos,
            ChatFormat::Dialogpt,
            "",
            &turns,
            &memory,
            64,
            8,
        )
        .unwrap();
        let hi = tokenizer.encode("hi").unwrap();
        assert_eq!(
            &laid.tokens[hi.len() + 1..hi.len() + 1 + written.len()],
            written.as_slice()
        );
        // Text that the ids cannot spell is not remembered.
        memory.remember(&tokenizer, "something else", &ids);
        assert_eq!(memory.get("something else"), None);
    }
}
