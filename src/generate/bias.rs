//! Logit bias: a number added to one token's logit before anything else in the sampler chain
//! (llama.cpp's order); `-inf` bans the token.
//!
//! Written `TOKEN=BIAS`, where TOKEN is a token id or a double-quoted string that is exactly one
//! token (`'" the"=-5'`), and BIAS a number or `-inf`. A quoted token is turned into its id
//! once the tokenizer is known ([`LogitBias::resolve`]); the sampler only sees ids.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::tokenizer::Tokenizer;

/// Which token a bias is for.
#[derive(Debug, Clone, PartialEq)]
pub enum BiasToken {
    Id(u32),
    /// The token's text, until the tokenizer turns it into an id.
    Text(String),
}

/// One `TOKEN=BIAS` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct LogitBias {
    pub token: BiasToken,
    /// Added to the logit; `f32::NEG_INFINITY` bans the token.
    pub bias: f32,
}

impl LogitBias {
    /// The token id, once resolved.
    pub fn id(&self) -> Option<u32> {
        match self.token {
            BiasToken::Id(id) => Some(id),
            BiasToken::Text(_) => None,
        }
    }

    /// Turns a quoted token into its id; checks an id is in the vocabulary. The error names
    /// the entry and says what is wrong with it.
    pub fn resolve(&self, tokenizer: &Tokenizer) -> Result<Self, String> {
        let id = match &self.token {
            BiasToken::Id(id) => {
                if (*id as usize) >= tokenizer.vocab_size() {
                    return Err(format!(
                        "logit bias {self}: token id {id} is not in the vocabulary (0 to {})",
                        tokenizer.vocab_size() - 1
                    ));
                }
                *id
            }
            BiasToken::Text(text) => {
                let ids = tokenizer
                    .encode(text)
                    .map_err(|e| format!("logit bias {self}: {e}"))?;
                match ids.as_slice() {
                    [id] => *id,
                    [] => return Err(format!("logit bias {self}: the text is empty")),
                    _ => {
                        return Err(format!(
                            "logit bias {self}: {text:?} is {} tokens, not one ({})",
                            ids.len(),
                            ids.iter()
                                .map(|&id| format!("{:?}", tokenizer.token_text(id)))
                                .collect::<Vec<_>>()
                                .join(" + ")
                        ))
                    }
                }
            }
        };
        Ok(Self {
            token: BiasToken::Id(id),
            bias: self.bias,
        })
    }
}

/// Resolves every entry (see [`LogitBias::resolve`]).
pub fn resolve_all(biases: &[LogitBias], tokenizer: &Tokenizer) -> Result<Vec<LogitBias>, String> {
    biases.iter().map(|b| b.resolve(tokenizer)).collect()
}

/// Adds each resolved bias to its logit; later entries for the same token add up.
pub fn apply(logits: &mut [f32], biases: &[LogitBias]) {
    for bias in biases {
        if let Some(x) = bias.id().and_then(|id| logits.get_mut(id as usize)) {
            *x += bias.bias;
        }
    }
}

impl FromStr for LogitBias {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        // The token part may itself hold `=` when quoted, so split at the last one.
        let (token, bias) = s
            .rsplit_once('=')
            .ok_or_else(|| format!("logit bias {s:?} is not TOKEN=BIAS"))?;
        let token = token.trim();
        let token = if let Some(inner) = token
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .filter(|_| token.len() >= 2)
        {
            BiasToken::Text(unescape(inner))
        } else {
            BiasToken::Id(token.parse().map_err(|_| {
                format!("logit bias {s:?}: token {token:?} is neither an id nor a quoted string")
            })?)
        };
        let bias = match bias.trim() {
            "-inf" => f32::NEG_INFINITY,
            b => b
                .parse::<f32>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| format!("logit bias {s:?}: bias {b:?} is not a number or -inf"))?,
        };
        Ok(Self { token, bias })
    }
}

/// `\n`, `\t`, `\"` and `\\` inside a quoted token, so that tokens such as a newline can be
/// named on a command line.
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

impl fmt::Display for LogitBias {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.token {
            BiasToken::Id(id) => write!(f, "{id}")?,
            BiasToken::Text(text) => write!(
                f,
                "\"{}\"",
                text.replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n")
                    .replace('\t', "\\t")
            )?,
        }
        if self.bias == f32::NEG_INFINITY {
            write!(f, "=-inf")
        } else {
            write!(f, "={}", self.bias)
        }
    }
}

// Stored as the `TOKEN=BIAS` text in config files and saved transcripts (JSON has no -inf).
impl Serialize for LogitBias {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LogitBias {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_and_print_back() {
        let b: LogitBias = "50256=-inf".parse().unwrap();
        assert_eq!(b.token, BiasToken::Id(50256));
        assert_eq!(b.bias, f32::NEG_INFINITY);
        assert_eq!(b.to_string(), "50256=-inf");
        let b: LogitBias = "\" the\"=-5".parse().unwrap();
        assert_eq!(b.token, BiasToken::Text(" the".into()));
        assert_eq!(b.bias, -5.0);
        assert_eq!(b.to_string(), "\" the\"=-5");
        let b: LogitBias = "\"=\"=2.5".parse().unwrap();
        assert_eq!(b.token, BiasToken::Text("=".into()));
        let b: LogitBias = "\"\\n\"=1".parse().unwrap();
        assert_eq!(b.token, BiasToken::Text("\n".into()));
        assert_eq!(b.to_string().parse::<LogitBias>().unwrap(), b);
    }

    #[test]
    fn bad_entries_say_what_is_wrong() {
        assert!("=abc".parse::<LogitBias>().unwrap_err().contains("token"));
        assert!("12=abc"
            .parse::<LogitBias>()
            .unwrap_err()
            .contains("\"abc\""));
        assert!("12"
            .parse::<LogitBias>()
            .unwrap_err()
            .contains("TOKEN=BIAS"));
        assert!("the=1".parse::<LogitBias>().unwrap_err().contains("quoted"));
        assert!("12=inf".parse::<LogitBias>().is_err());
    }

    #[test]
    fn biases_add_to_their_logits() {
        let mut logits = vec![0.0, 1.0, 2.0];
        let biases: Vec<LogitBias> = ["0=-inf", "2=1.5", "2=0.5", "\"x\"=9"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        apply(&mut logits, &biases);
        assert_eq!(logits, vec![f32::NEG_INFINITY, 1.0, 4.0]);
    }
}
