//! `config.toml`: the user's defaults. Precedence: command-line flags, then this file, then
//! built-in defaults.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::generate::SamplingParams;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `bundled`, a folder, a hub repository id or an alias.
    pub model: Option<String>,
    /// auto | cpu | cuda | cuda:N | metal
    pub device: Option<String>,
    /// auto | f32 | f16 | bf16
    pub dtype: Option<String>,
    /// CPU threads; 0 or absent = all cores.
    pub threads: Option<usize>,
    pub sampling: SamplingParams,
    pub chat: ChatConfig,
    pub ui: UiConfig,
    pub cache: CacheConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Keep each model quantized by an 8- or 4-bit `dtype` as a GGUF file, so that later
    /// starts read it instead of quantizing again.
    pub quantized: bool,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self { quantized: true }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChatConfig {
    /// The mode the interface opens in: `chat` or `complete`.
    pub mode: String,
    /// Prompt format: `auto`, `dialogpt` or `transcript`.
    pub format: String,
    /// Text put before the conversation (empty = none).
    pub system: String,
    /// Save every conversation in the data folder's `sessions/` by itself.
    pub autosave: bool,
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            mode: "chat".into(),
            format: "auto".into(),
            system: String::new(),
            autosave: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UiConfig {
    pub theme: String,
}

impl Default for UiConfig {
    fn default() -> Self {
        Self {
            theme: "dark".into(),
        }
    }
}

impl Config {
    /// The default location: `config.toml` in the platform's config folder for gpt2-tui.
    pub fn default_path() -> Option<PathBuf> {
        directories::ProjectDirs::from("", "", "gpt2-tui")
            .map(|d| d.config_dir().join("config.toml"))
    }

    /// The folder that holds `config.toml` and user themes.
    pub fn default_dir() -> Option<PathBuf> {
        directories::ProjectDirs::from("", "", "gpt2-tui").map(|d| d.config_dir().to_path_buf())
    }

    /// Loads `explicit` (which must exist), else the default file if there is one, else defaults.
    pub fn load(explicit: Option<&Path>) -> Result<Self> {
        match explicit {
            Some(path) => Self::from_file(path),
            None => match Self::default_path() {
                Some(path) if path.is_file() => Self::from_file(&path),
                _ => Ok(Self::default()),
            },
        }
    }

    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Usage(format!("config file {}: {e}", path.display())))?;
        Self::parse(&text)
            .map_err(|message| Error::Usage(format!("config file {}: {message}", path.display())))
    }

    /// Parses and checks a config; errors give the line and key.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let config: Self =
            toml::from_str(text).map_err(|e| e.to_string().trim_end().replace('\n', " "))?;
        config
            .sampling
            .validate()
            .map_err(|e| format!("[sampling] {e}"))?;
        if !matches!(config.chat.mode.as_str(), "chat" | "complete") {
            return Err(format!(
                "[chat] mode \"{}\" is not chat or complete",
                config.chat.mode
            ));
        }
        if !matches!(
            config.chat.format.as_str(),
            "auto" | "dialogpt" | "transcript"
        ) {
            return Err(format!(
                "[chat] format \"{}\" is not auto, dialogpt or transcript",
                config.chat.format
            ));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_all_defaults() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
    }

    #[test]
    fn partial_sampling_table_keeps_other_defaults() {
        let c = Config::parse("[sampling]\ntemperature = 0.3\n").unwrap();
        assert_eq!(c.sampling.temperature, 0.3);
        assert_eq!(c.sampling.top_k, SamplingParams::default().top_k);
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let err = Config::parse("model = \"gpt2\"\n[sampling]\ntemprature = 0.3\n").unwrap_err();
        assert!(
            err.contains("line 3") && err.contains("temprature"),
            "{err}"
        );
    }

    #[test]
    fn autosave_is_on_unless_turned_off() {
        assert!(Config::default().chat.autosave);
        assert!(
            Config::parse("[chat]\nmode = \"chat\"\n")
                .unwrap()
                .chat
                .autosave
        );
        assert!(
            !Config::parse("[chat]\nautosave = false\n")
                .unwrap()
                .chat
                .autosave
        );
        let err = Config::parse("[chat]\nautosave = \"no\"\n").unwrap_err();
        assert!(err.contains("autosave"), "{err}");
    }

    #[test]
    fn the_quantized_cache_is_on_unless_turned_off() {
        assert!(Config::default().cache.quantized);
        assert!(
            !Config::parse("[cache]\nquantized = false\n")
                .unwrap()
                .cache
                .quantized
        );
        let err = Config::parse("[cache]\nfolder = \"/tmp\"\n").unwrap_err();
        assert!(err.contains("folder"), "{err}");
    }

    #[test]
    fn out_of_range_value_names_the_key() {
        let err = Config::parse("[sampling]\ntop_p = 2.0\n").unwrap_err();
        assert!(err.contains("top-p 2"), "{err}");
    }

    #[test]
    fn logit_bias_entries_parse_and_a_bad_one_names_line_and_value() {
        let c =
            Config::parse("[sampling]\nlogit_bias = [\"50256=-inf\", '\" the\"=-2.5']\n").unwrap();
        let shown: Vec<String> = c
            .sampling
            .logit_bias
            .iter()
            .map(|b| b.to_string())
            .collect();
        assert_eq!(shown, ["50256=-inf", "\" the\"=-2.5"]);
        let err = Config::parse("[sampling]\nlogit_bias = [\"12=abc\"]\n").unwrap_err();
        assert!(err.contains("line 2") && err.contains("abc"), "{err}");
    }
}
