//! The live sampling controls: their names, steps and ranges.

use crate::generate::bias::LogitBias;
use crate::generate::SamplingParams;
use crate::tokenizer::Tokenizer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Temperature,
    TopK,
    TopP,
    MinP,
    RepeatPenalty,
    MaxTokens,
    Seed,
}

pub const CONTROLS: [Control; 7] = [
    Control::Temperature,
    Control::TopK,
    Control::TopP,
    Control::MinP,
    Control::RepeatPenalty,
    Control::MaxTokens,
    Control::Seed,
];

impl Control {
    pub fn label(self) -> &'static str {
        match self {
            Control::Temperature => "temperature",
            Control::TopK => "top-k",
            Control::TopP => "top-p",
            Control::MinP => "min-p",
            Control::RepeatPenalty => "repeat penalty",
            Control::MaxTokens => "max tokens",
            Control::Seed => "seed",
        }
    }

    /// The value as the panel shows it, with what "off" means.
    pub fn show(self, p: &SamplingParams) -> String {
        match self {
            Control::Temperature if p.temperature == 0.0 => "0 (greedy)".into(),
            Control::Temperature => format!("{:.2}", p.temperature),
            Control::TopK if p.top_k == 0 => "off".into(),
            Control::TopK => p.top_k.to_string(),
            Control::TopP if p.top_p >= 1.0 => "off".into(),
            Control::TopP => format!("{:.2}", p.top_p),
            Control::MinP if p.min_p == 0.0 => "off".into(),
            Control::MinP => format!("{:.2}", p.min_p),
            Control::RepeatPenalty if p.repeat_penalty == 1.0 => "off".into(),
            Control::RepeatPenalty => format!("{:.2}", p.repeat_penalty),
            Control::MaxTokens => p.max_tokens.to_string(),
            Control::Seed => p.seed.map_or("random".into(), |s| s.to_string()),
        }
    }

    /// One step up (`+1`) or down (`-1`), kept in range.
    pub fn step(self, p: &mut SamplingParams, direction: i32) {
        let d = direction as f32;
        let round = |x: f32| (x * 100.0).round() / 100.0;
        match self {
            Control::Temperature => {
                p.temperature = round((p.temperature + 0.05 * d).clamp(0.0, 2.0))
            }
            Control::TopK => {
                p.top_k = (p.top_k as i64 + 5 * direction as i64).clamp(0, 500) as usize
            }
            Control::TopP => p.top_p = round((p.top_p + 0.05 * d).clamp(0.05, 1.0)),
            Control::MinP => p.min_p = round((p.min_p + 0.01 * d).clamp(0.0, 1.0)),
            Control::RepeatPenalty => {
                p.repeat_penalty = round((p.repeat_penalty + 0.05 * d).clamp(0.5, 2.0))
            }
            Control::MaxTokens => {
                p.max_tokens =
                    (p.max_tokens as i64 + 16 * direction as i64).clamp(1, 100_000) as usize
            }
            Control::Seed => {
                p.seed = match (p.seed, direction > 0) {
                    (None, true) => Some(0),
                    (None, false) => None,
                    (Some(0), false) => None,
                    (Some(s), true) => Some(s + 1),
                    (Some(s), false) => Some(s - 1),
                }
            }
        }
    }
}

/// Applies `/set NAME VALUE`; the error says what was wrong.
pub fn set(p: &mut SamplingParams, name: &str, value: &str) -> Result<(), String> {
    let mut next = p.clone();
    let number = || {
        value
            .parse::<f32>()
            .map_err(|_| format!("{name}: \"{value}\" is not a number"))
    };
    let count = || {
        value
            .parse::<usize>()
            .map_err(|_| format!("{name}: \"{value}\" is not a whole number"))
    };
    match name.replace('-', "_").as_str() {
        "temperature" | "temp" => next.temperature = number()?,
        "top_k" => next.top_k = count()?,
        "top_p" => next.top_p = number()?,
        "min_p" => next.min_p = number()?,
        "repeat_penalty" => next.repeat_penalty = number()?,
        "repeat_last_n" => next.repeat_last_n = count()?,
        "max_tokens" => next.max_tokens = count()?.max(1),
        "seed" => {
            next.seed = match value {
                "random" | "none" => None,
                v => Some(v.parse().map_err(|_| format!("seed: \"{v}\" is not a number or `random`"))?),
            }
        }
        other => {
            return Err(format!(
                "unknown setting `{other}` (temperature, top_k, top_p, min_p, repeat_penalty, repeat_last_n, max_tokens, seed)"
            ))
        }
    }
    next.validate()?;
    *p = next;
    Ok(())
}

/// Sets `entry`'s bias for its token, replacing one the token had; a bias of 0 removes it.
/// Returns the entry it replaced or removed.
pub fn set_bias(p: &mut SamplingParams, entry: LogitBias) -> Option<LogitBias> {
    let at = p.logit_bias.iter().position(|b| b.token == entry.token);
    let old = at.map(|i| p.logit_bias.remove(i));
    if entry.bias != 0.0 {
        p.logit_bias.insert(at.unwrap_or(p.logit_bias.len()), entry);
    }
    old
}

/// A logit bias as the panel and the status bar show it: the token's text when the tokenizer
/// is there (`" the"=-inf`), else as written (`262=+1.5`).
pub fn show_bias(b: &LogitBias, tokenizer: Option<&Tokenizer>) -> String {
    let token = match (b.id(), tokenizer) {
        (Some(id), Some(t)) if (id as usize) < t.vocab_size() => format!("{:?}", t.token_text(id)),
        _ => {
            let written = b.to_string();
            let cut = written.rfind('=').unwrap_or(written.len());
            written[..cut].to_string()
        }
    };
    if b.bias == f32::NEG_INFINITY {
        format!("{token}=-inf")
    } else {
        format!("{token}={:+}", b.bias)
    }
}

/// Every bias set, shown as [`show_bias`] does, separated by spaces.
pub fn show_biases(p: &SamplingParams, tokenizer: Option<&Tokenizer>) -> String {
    p.logit_bias
        .iter()
        .map(|b| show_bias(b, tokenizer))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_stay_in_range() {
        let mut p = SamplingParams {
            temperature: 0.02,
            ..SamplingParams::default()
        };
        Control::Temperature.step(&mut p, -1);
        assert_eq!(p.temperature, 0.0);
        Control::TopP.step(&mut p, 1);
        Control::TopP.step(&mut p, 1);
        assert_eq!(p.top_p, 1.0);
        let mut p = SamplingParams {
            seed: Some(0),
            ..SamplingParams::default()
        };
        Control::Seed.step(&mut p, -1);
        assert_eq!(p.seed, None);
    }

    #[test]
    fn set_checks_names_and_values() {
        let mut p = SamplingParams::default();
        set(&mut p, "temperature", "0.42").unwrap();
        assert_eq!(p.temperature, 0.42);
        set(&mut p, "top-k", "7").unwrap();
        assert_eq!(p.top_k, 7);
        assert!(set(&mut p, "top_p", "3").unwrap_err().contains("top-p 3"));
        assert!(set(&mut p, "warmth", "1")
            .unwrap_err()
            .contains("unknown setting"));
        assert_eq!(
            p.top_p,
            SamplingParams::default().top_p,
            "a rejected value changes nothing"
        );
    }
}
