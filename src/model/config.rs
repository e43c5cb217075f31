//! `config.json` of a Hugging Face GPT-2 checkpoint (`GPT2Config`).

use serde::{Deserialize, Serialize};
use std::path::Path;

use crate::error::{Error, Result};

/// The subset of `GPT2Config` that shapes the network. Unknown keys are ignored,
/// as transformers writes many that do not matter for inference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gpt2Config {
    pub vocab_size: usize,
    pub n_positions: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    /// MLP width; `None` (JSON `null`) means 4 * n_embd.
    #[serde(default)]
    pub n_inner: Option<usize>,
    #[serde(default = "default_layer_norm_epsilon")]
    pub layer_norm_epsilon: f64,
    #[serde(default = "default_activation")]
    pub activation_function: String,
    #[serde(default = "default_special_id")]
    pub bos_token_id: u32,
    #[serde(default = "default_special_id")]
    pub eos_token_id: u32,
    /// Kept so a folder we write is a valid transformers checkpoint.
    #[serde(default = "default_model_type")]
    pub model_type: String,
    #[serde(default = "default_architectures")]
    pub architectures: Vec<String>,
}

fn default_layer_norm_epsilon() -> f64 {
    1e-5
}
fn default_activation() -> String {
    "gelu_new".into()
}
fn default_special_id() -> u32 {
    50256
}
fn default_model_type() -> String {
    "gpt2".into()
}
fn default_architectures() -> Vec<String> {
    vec!["GPT2LMHeadModel".into()]
}

/// The MLP activations GPT-2 checkpoints use. `gelu_new` (and its aliases) is the
/// tanh approximation; plain `gelu` is the exact erf form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    GeluTanh,
    GeluErf,
    Relu,
}

impl Gpt2Config {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_json(&text).map_err(|e| match e {
            Error::Config { message, .. } => Error::Config {
                file: path.display().to_string(),
                message,
            },
            other => other,
        })
    }

    pub fn from_json(text: &str) -> Result<Self> {
        let cfg: Self = serde_json::from_str(text).map_err(|e| Error::Config {
            file: "config.json".into(),
            message: e.to_string(),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<()> {
        let bad = |message: String| {
            Err(Error::Config {
                file: "config.json".into(),
                message,
            })
        };
        for (key, value) in [
            ("vocab_size", self.vocab_size),
            ("n_positions", self.n_positions),
            ("n_embd", self.n_embd),
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
        ] {
            if value == 0 {
                return bad(format!("`{key}` must be positive, got 0"));
            }
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            return bad(format!(
                "`n_embd` ({}) must be a multiple of `n_head` ({})",
                self.n_embd, self.n_head
            ));
        }
        if self.n_inner == Some(0) {
            return bad("`n_inner` must be positive".into());
        }
        // Written this way so that NaN is refused too.
        #[allow(clippy::neg_cmp_op_on_partial_ord)]
        if !(self.layer_norm_epsilon > 0.0) {
            return bad(format!(
                "`layer_norm_epsilon` must be positive, got {}",
                self.layer_norm_epsilon
            ));
        }
        self.activation()?;
        Ok(())
    }

    pub fn activation(&self) -> Result<Activation> {
        match self.activation_function.as_str() {
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(Activation::GeluTanh),
            "gelu" => Ok(Activation::GeluErf),
            "relu" => Ok(Activation::Relu),
            other => Err(Error::Config {
                file: "config.json".into(),
                message: format!("unsupported `activation_function` \"{other}\""),
            }),
        }
    }

    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    pub fn mlp_width(&self) -> usize {
        self.n_inner.unwrap_or(4 * self.n_embd)
    }

    /// The original 124M GPT-2.
    pub fn gpt2_small() -> Self {
        Self {
            vocab_size: 50257,
            n_positions: 1024,
            n_embd: 768,
            n_layer: 12,
            n_head: 12,
            n_inner: None,
            layer_norm_epsilon: 1e-5,
            activation_function: default_activation(),
            bos_token_id: 50256,
            eos_token_id: 50256,
            model_type: default_model_type(),
            architectures: default_architectures(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_n_inner_means_four_times_width() {
        let cfg = Gpt2Config::from_json(
            r#"{"vocab_size": 10, "n_positions": 8, "n_embd": 12, "n_layer": 1, "n_head": 3, "n_inner": null}"#,
        )
        .unwrap();
        assert_eq!(cfg.mlp_width(), 48);
        assert_eq!(cfg.head_dim(), 4);
    }

    #[test]
    fn rejects_heads_that_do_not_divide_width() {
        let err = Gpt2Config::from_json(
            r#"{"vocab_size": 10, "n_positions": 8, "n_embd": 10, "n_layer": 1, "n_head": 3}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("n_head"), "{err}");
    }

    #[test]
    fn rejects_unknown_activation() {
        let err = Gpt2Config::from_json(
            r#"{"vocab_size": 10, "n_positions": 8, "n_embd": 12, "n_layer": 1, "n_head": 3, "activation_function": "swish"}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("swish"), "{err}");
    }
}
