//! Looking inside the model: where its parameters sit, and how a text splits into tokens.

use serde::Serialize;

use crate::model::{Gpt2, Gpt2Config};
use crate::tokenizer::Tokenizer;

/// How the last of `ids` attends to each of them (itself included), per layer and head:
/// `[layer][head][key]`, each head's weights summing to one. Causal attention means the tokens
/// after it change nothing, so only `ids` up to the token of interest are run.
pub fn last_token_attention(model: &Gpt2, ids: &[u32]) -> crate::Result<Vec<Vec<Vec<f32>>>> {
    let Some(last) = ids.len().checked_sub(1) else {
        return Err(crate::Error::Other("no token to look at".into()));
    };
    let maps = model.attention_maps(ids)?;
    maps.iter()
        .map(|map| Ok(map.narrow(1, last, 1)?.squeeze(1)?.to_vec2::<f32>()?))
        .collect()
}

/// One named part of the network and its parameter count.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Part {
    pub name: String,
    pub parameters: usize,
    /// Set for the per-block parts: which block.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block: Option<usize>,
}

/// The parameter count of every part of a GPT-2, as stored in its checkpoint.
#[derive(Debug, Clone, Serialize)]
pub struct Anatomy {
    pub parts: Vec<Part>,
    pub total: usize,
    pub tied_head: bool,
}

impl Anatomy {
    pub fn of(config: &Gpt2Config, tied_head: bool) -> Self {
        let (v, p, e, i) = (
            config.vocab_size,
            config.n_positions,
            config.n_embd,
            config.mlp_width(),
        );
        let part = |name: &str, parameters: usize, block: Option<usize>| Part {
            name: name.to_string(),
            parameters,
            block,
        };
        let mut parts = vec![
            part("token embeddings (wte)", v * e, None),
            part("position embeddings (wpe)", p * e, None),
        ];
        for b in 0..config.n_layer {
            parts.push(part("attention qkv (c_attn)", e * 3 * e + 3 * e, Some(b)));
            parts.push(part("attention projection (c_proj)", e * e + e, Some(b)));
            parts.push(part("MLP (c_fc + c_proj)", e * i + i + i * e + e, Some(b)));
            parts.push(part("layer norms (ln_1 + ln_2)", 4 * e, Some(b)));
        }
        parts.push(part("final layer norm (ln_f)", 2 * e, None));
        parts.push(part(
            if tied_head {
                "language-model head (tied to wte)"
            } else {
                "language-model head (lm_head)"
            },
            if tied_head { 0 } else { v * e },
            None,
        ));
        let total = parts.iter().map(|p| p.parameters).sum();
        Self {
            parts,
            total,
            tied_head,
        }
    }

    /// Parameters of all blocks' parts with this name.
    pub fn sum_over_blocks(&self, name: &str) -> usize {
        self.parts
            .iter()
            .filter(|p| p.block.is_some() && p.name == name)
            .map(|p| p.parameters)
            .sum()
    }

    /// The parts with the per-block ones added up over all blocks, in order.
    pub fn summary(&self) -> Vec<Part> {
        let mut out: Vec<Part> = Vec::new();
        for p in &self.parts {
            match out.iter_mut().find(|q| q.name == p.name) {
                Some(q) => q.parameters += p.parameters,
                None => out.push(Part {
                    block: None,
                    ..p.clone()
                }),
            }
        }
        out
    }
}

/// One token of a text, for the tokenizer view and `gpt2-tui tokenize`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenRow {
    pub id: u32,
    /// The token's own text; a token holding part of a UTF-8 character shows U+FFFD.
    pub text: String,
    /// Byte offsets into the input.
    pub start: usize,
    pub end: usize,
}

pub fn token_rows(tokenizer: &Tokenizer, text: &str) -> crate::Result<Vec<TokenRow>> {
    Ok(tokenizer
        .encode_spans(text)?
        .into_iter()
        .map(|s| TokenRow {
            id: s.id,
            text: tokenizer.token_text(s.id),
            start: s.start,
            end: s.end,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpt2_small_has_124m_parameters() {
        let a = Anatomy::of(&Gpt2Config::gpt2_small(), true);
        assert_eq!(a.total, 124_439_808);
        assert_eq!(a.summary().len(), 8);
        assert_eq!(
            a.sum_over_blocks("MLP (c_fc + c_proj)"),
            12 * (768 * 3072 * 2 + 3072 + 768)
        );
    }
}
