//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::Config;
use crate::generate::bias::LogitBias;
use crate::generate::SamplingParams;
use crate::runtime::device::{DTypeRequest, DeviceRequest};

#[derive(Debug, Parser)]
#[command(
    name = "gpt2-tui",
    version,
    allow_negative_numbers = true,
    about = "Talk to GPT-2 in your terminal, or pipe prompts through it",
    after_help = "Pipe mode: with --prompt, or when stdin or stdout is not a terminal, the prompt is \
                  read (all of stdin, one trailing newline removed) and only the generated text is \
                  written to stdout; diagnostics go to stderr."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// List the model aliases, the models in the Hugging Face cache and the bundled model
    /// (same as `gpt2-tui models`).
    #[arg(long)]
    pub list_models: bool,
    /// Reopen a saved conversation in the interface: the most recent one, or the one with this
    /// id (`gpt2-tui sessions` lists them).
    #[arg(long, value_name = "ID", num_args = 0..=1, default_missing_value = "")]
    pub resume: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub generate: GenerateArgs,
}

/// Flags every command takes.
#[derive(Debug, Args, Clone, Default)]
pub struct CommonArgs {
    /// Model: `bundled` (the default), a folder in Hugging Face layout, a hub repository id
    /// (`openai-community/gpt2-large`, optionally `@revision`) or an alias (`gpt2`,
    /// `gpt2-medium`, `gpt2-large`, `gpt2-xl`, `distilgpt2`, `dialogpt-small|medium|large`).
    #[arg(long, global = true, value_name = "MODEL")]
    pub model: Option<String>,
    /// With a hub repository as --model: the GGUF file of it to load (`gpt2.Q4_K_M.gguf`).
    #[arg(long, global = true, value_name = "NAME")]
    pub gguf_file: Option<String>,
    /// auto | cpu | cuda | cuda:N | metal
    #[arg(long, global = true, value_parser = clap::value_parser!(DeviceRequestArg))]
    pub device: Option<DeviceRequestArg>,
    /// auto | f32 | f16 | bf16 | q8_0 | q4_0 | q4_k (8- or 4-bit weights, quantized at load)
    #[arg(long, global = true, value_parser = clap::value_parser!(DTypeRequestArg))]
    pub dtype: Option<DTypeRequestArg>,
    /// Config file (default: config.toml in the gpt2-tui config folder).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// CPU threads (default: all cores).
    #[arg(long, global = true, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// With an 8- or 4-bit --dtype: quantize in memory, neither reading nor writing the cache
    /// of quantized models (config: `[cache] quantized = false`).
    #[arg(long, global = true)]
    pub no_cache: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct DeviceRequestArg(pub DeviceRequest);
#[derive(Debug, Clone, Copy)]
pub struct DTypeRequestArg(pub DTypeRequest);

impl std::str::FromStr for DeviceRequestArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse().map(Self)
    }
}

impl std::str::FromStr for DTypeRequestArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse().map(Self)
    }
}

/// Generation flags (pipe mode, and the starting values of the interface).
#[derive(Debug, Args, Clone, Default)]
pub struct GenerateArgs {
    /// The prompt (implies pipe mode).
    #[arg(long, short = 'p')]
    pub prompt: Option<String>,
    /// 0 = greedy.
    #[arg(long, value_parser = non_negative_f32)]
    pub temperature: Option<f32>,
    /// 0 = off.
    #[arg(long)]
    pub top_k: Option<usize>,
    /// 1 = off.
    #[arg(long, value_parser = probability_above_zero)]
    pub top_p: Option<f32>,
    /// 0 = off.
    #[arg(long, value_parser = probability)]
    pub min_p: Option<f32>,
    /// 1 = off.
    #[arg(long, value_parser = positive_f32)]
    pub repeat_penalty: Option<f32>,
    /// How many recent tokens the repetition penalty looks at.
    #[arg(long)]
    pub repeat_last_n: Option<usize>,
    #[arg(long)]
    pub seed: Option<u64>,
    #[arg(long, short = 'n')]
    pub max_tokens: Option<usize>,
    /// Add BIAS to TOKEN's logit before sampling (repeatable; replaces the config's list):
    /// TOKEN is an id or a double-quoted string that is exactly one token ('" the"=-5'), BIAS
    /// a number or -inf (never drawn).
    #[arg(long = "logit-bias", value_name = "TOKEN=BIAS")]
    pub logit_bias: Vec<LogitBias>,
    /// With --format jsonl: the N most likely tokens at each step (raw softmax), best first.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub top_logprobs: Option<u16>,
    /// Stop when this text is generated (repeatable); the stop text is not printed.
    #[arg(long = "stop", value_name = "TEXT")]
    pub stop: Vec<String>,
    /// Keep going past <|endoftext|>.
    #[arg(long)]
    pub ignore_eos: bool,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Print one JSON line of statistics on stderr at the end.
    #[arg(long)]
    pub stats: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    #[default]
    Text,
    Jsonl,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ReportFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show how a text splits into tokens: one JSON line per token (id, text, byte offsets).
    Tokenize {
        /// The text (default: all of stdin).
        text: Option<String>,
    },
    /// The model's config and where its parameters sit.
    Info {
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
    /// Every token of a text with the model's view of it: log-probability, rank, entropy and
    /// the most likely alternatives (jsonl), or the text coloured by probability (text).
    Score {
        /// The text file; `-` or none reads stdin.
        file: Option<PathBuf>,
        /// Tokens between window starts for texts longer than the window (default: half).
        #[arg(long)]
        stride: Option<usize>,
        /// Alternatives listed per token (jsonl).
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(0..=1000))]
        top: u16,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Score a text file: tokens, mean negative log-likelihood, perplexity, bits per byte.
    Perplexity {
        file: PathBuf,
        /// Tokens between window starts (default: half the window).
        #[arg(long)]
        stride: Option<usize>,
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
    /// Serve the model over HTTP with an OpenAI-compatible API (/v1/completions,
    /// /v1/chat/completions, /v1/models) plus /tokenize, /detokenize and /health.
    Serve(ServeArgs),
    /// List the saved conversations, newest first: id, date, model, messages, first words
    /// (tab-separated; files that cannot be read are named on stderr, or as `error` lines in
    /// jsonl).
    Sessions {
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// List the model aliases, what is in the Hugging Face cache (with sizes) and the bundled
    /// model.
    Models {
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
}

/// Where `serve` listens and who may use it.
#[derive(Debug, Args, Clone)]
pub struct ServeArgs {
    /// Address to listen on (loopback by default; binding elsewhere is explicit).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on; 0 picks a free one (the address is printed on stderr).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Require `Authorization: Bearer KEY` on every request but /health.
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,
}

fn parse_f32(s: &str) -> Result<f32, String> {
    s.parse::<f32>()
        .ok()
        .filter(|x| x.is_finite())
        .ok_or_else(|| format!("\"{s}\" is not a number"))
}

fn non_negative_f32(s: &str) -> Result<f32, String> {
    parse_f32(s).and_then(|x| {
        if x >= 0.0 {
            Ok(x)
        } else {
            Err("must be 0 or more".into())
        }
    })
}

fn positive_f32(s: &str) -> Result<f32, String> {
    parse_f32(s).and_then(|x| {
        if x > 0.0 {
            Ok(x)
        } else {
            Err("must be above 0".into())
        }
    })
}

fn probability(s: &str) -> Result<f32, String> {
    parse_f32(s).and_then(|x| {
        if (0.0..=1.0).contains(&x) {
            Ok(x)
        } else {
            Err("must be between 0 and 1".into())
        }
    })
}

fn probability_above_zero(s: &str) -> Result<f32, String> {
    probability(s).and_then(|x| {
        if x > 0.0 {
            Ok(x)
        } else {
            Err("must be above 0 and at most 1".into())
        }
    })
}

impl GenerateArgs {
    /// Flags over the config file's values.
    pub fn sampling(&self, config: &Config) -> SamplingParams {
        let base = &config.sampling;
        SamplingParams {
            temperature: self.temperature.unwrap_or(base.temperature),
            top_k: self.top_k.unwrap_or(base.top_k),
            top_p: self.top_p.unwrap_or(base.top_p),
            min_p: self.min_p.unwrap_or(base.min_p),
            repeat_penalty: self.repeat_penalty.unwrap_or(base.repeat_penalty),
            repeat_last_n: self.repeat_last_n.unwrap_or(base.repeat_last_n),
            max_tokens: self.max_tokens.unwrap_or(base.max_tokens),
            seed: self.seed.or(base.seed),
            logit_bias: if self.logit_bias.is_empty() {
                base.logit_bias.clone()
            } else {
                self.logit_bias.clone()
            },
            frequency_penalty: base.frequency_penalty,
            presence_penalty: base.presence_penalty,
        }
    }
}

impl CommonArgs {
    pub fn model_spec(&self, config: &Config) -> String {
        self.model
            .clone()
            .or_else(|| config.model.clone())
            .unwrap_or_else(|| "bundled".into())
    }

    pub fn device_request(&self, config: &Config) -> Result<DeviceRequest, String> {
        match (self.device, &config.device) {
            (Some(d), _) => Ok(d.0),
            (None, Some(d)) => d.parse().map_err(|e| format!("config `device`: {e}")),
            (None, None) => Ok(DeviceRequest::Auto),
        }
    }

    /// Whether 8- and 4-bit loads read and write the cache of quantized models.
    pub fn quantized_cache(&self, config: &Config) -> bool {
        !self.no_cache && config.cache.quantized
    }

    pub fn dtype_request(&self, config: &Config) -> Result<DTypeRequest, String> {
        match (self.dtype, &config.dtype) {
            (Some(d), _) => Ok(d.0),
            (None, Some(d)) => d.parse().map_err(|e| format!("config `dtype`: {e}")),
            (None, None) => Ok(DTypeRequest::Auto),
        }
    }
}
