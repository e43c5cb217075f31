//! What `--model` names: `bundled`; a local folder in Hugging Face layout; a hub repository id
//! (`org/name`, optionally `@revision`); or a short alias for the GPT-2 family.
//!
//! A folder that exists wins over an alias or a repository id of the same spelling, as in
//! transformers' `from_pretrained`.

use std::path::{Path, PathBuf};

use super::hub::{self, DownloadEvent, HubModel};
use super::loader::ModelFiles;
use crate::error::{Error, Result};

/// A short name for a well-known GPT-2 checkpoint.
#[derive(Debug, Clone, Copy)]
pub struct Alias {
    pub name: &'static str,
    pub repo: &'static str,
    /// Older ids the hub still redirects, under which Python tools may have cached the files.
    pub legacy: &'static [&'static str],
    pub description: &'static str,
}

pub const ALIASES: &[Alias] = &[
    Alias {
        name: "gpt2",
        repo: "openai-community/gpt2",
        legacy: &["gpt2"],
        description: "GPT-2 124M (12 layers, 768 wide)",
    },
    Alias {
        name: "gpt2-medium",
        repo: "openai-community/gpt2-medium",
        legacy: &["gpt2-medium"],
        description: "GPT-2 355M (24 layers, 1024 wide)",
    },
    Alias {
        name: "gpt2-large",
        repo: "openai-community/gpt2-large",
        legacy: &["gpt2-large"],
        description: "GPT-2 774M (36 layers, 1280 wide)",
    },
    Alias {
        name: "gpt2-xl",
        repo: "openai-community/gpt2-xl",
        legacy: &["gpt2-xl"],
        description: "GPT-2 1.5B (48 layers, 1600 wide)",
    },
    Alias {
        name: "distilgpt2",
        repo: "distilbert/distilgpt2",
        legacy: &["distilgpt2"],
        description: "DistilGPT2 82M (6 layers, 768 wide)",
    },
    Alias {
        name: "dialogpt-small",
        repo: "microsoft/DialoGPT-small",
        legacy: &[],
        description: "DialoGPT 124M, conversational",
    },
    Alias {
        name: "dialogpt-medium",
        repo: "microsoft/DialoGPT-medium",
        legacy: &[],
        description: "DialoGPT 355M, conversational",
    },
    Alias {
        name: "dialogpt-large",
        repo: "microsoft/DialoGPT-large",
        legacy: &[],
        description: "DialoGPT 774M, conversational",
    },
];

/// Looks an alias up, ignoring case (`DialoGPT-small` works too).
pub fn alias(name: &str) -> Option<&'static Alias> {
    ALIASES.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

pub fn alias_names() -> String {
    ALIASES
        .iter()
        .map(|a| a.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where a model comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    Bundled,
    Folder(PathBuf),
    Hub(HubModel),
}

/// A hub repository id: `owner/name`, each part of letters, digits, `-`, `_` and `.`.
pub fn is_repo_id(s: &str) -> bool {
    let parts: Vec<&str> = s.split('/').collect();
    parts.len() == 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 96
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                && !p.starts_with(['.', '-'])
                && !p.ends_with(['.', '-'])
                && !p.contains("..")
        })
}

/// `~/x` is the home folder's `x` (a config file's `model = "~/models/gpt2"` works).
fn expand_home(spec: &str) -> PathBuf {
    match (spec.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(spec),
    }
}

/// Spellings that can only mean a path on disk.
fn looks_like_path(spec: &str) -> bool {
    spec.starts_with(['/', '.', '~', '\\'])
        || spec.ends_with(['/', '\\'])
        || spec.contains('\\')
        || spec.matches('/').count() > 1
        || (spec.len() > 1 && spec.as_bytes()[1] == b':')
}

/// Says what a `--model` value names, without touching the network.
pub fn parse(spec: &str) -> Result<ModelSource> {
    if spec == "bundled" {
        return Ok(ModelSource::Bundled);
    }
    if spec.trim().is_empty() {
        return Err(Error::Usage(
            "--model is empty (give `bundled`, a folder, a hub repository id or an alias)".into(),
        ));
    }
    let path = expand_home(spec);
    if path.exists() {
        return Ok(ModelSource::Folder(path));
    }
    let name_part = spec.split_once('@').map_or(spec, |(name, _)| name);
    if looks_like_path(name_part) {
        return Err(Error::Usage(format!(
            "--model {spec}: no such folder (give `bundled`, a folder with config.json, weights and a tokenizer, a hub repository id such as openai-community/gpt2, or one of {})",
            alias_names()
        )));
    }
    let (name, revision) = match spec.split_once('@') {
        Some((name, rev)) if !rev.is_empty() && !name.is_empty() => (name, Some(rev.to_string())),
        Some(_) => {
            return Err(Error::Usage(format!(
                "--model {spec}: expected NAME@REVISION with both parts"
            )))
        }
        None => (spec, None),
    };
    if let Some(a) = alias(name) {
        let mut model = HubModel::new(a.repo, revision);
        model.cached_as = a.legacy.iter().map(|s| s.to_string()).collect();
        return Ok(ModelSource::Hub(model));
    }
    if is_repo_id(name) {
        return Ok(ModelSource::Hub(HubModel::new(name, revision)));
    }
    Err(Error::Usage(format!(
        "--model {spec}: no such folder, and not a hub repository id (owner/name) or an alias ({})",
        alias_names()
    )))
}

/// Resolves a `--model` value to the checkpoint's files, downloading what is missing without
/// showing progress. See [`resolve_with`].
pub fn resolve(spec: &str) -> Result<ModelFiles> {
    resolve_with(spec, &mut |_| {})
}

/// Resolves a `--model` value to the checkpoint's files; a hub model is taken from the
/// Hugging Face cache or downloaded into it, reporting progress to `on_event`.
pub fn resolve_with(spec: &str, on_event: &mut dyn FnMut(&DownloadEvent)) -> Result<ModelFiles> {
    resolve_gguf_with(spec, None, on_event)
}

/// [`resolve_with`], with `--gguf-file`: the GGUF file of a hub repository to use (the
/// repository's first one is used anyway when it has no checkpoint).
pub fn resolve_gguf_with(
    spec: &str,
    gguf_file: Option<&str>,
    on_event: &mut dyn FnMut(&DownloadEvent),
) -> Result<ModelFiles> {
    let source = parse(spec)?;
    if let (Some(file), false) = (gguf_file, matches!(source, ModelSource::Hub(_))) {
        return Err(Error::Usage(format!(
            "--gguf-file {file} picks a file of a hub repository; for a local file give --model with its path"
        )));
    }
    match source {
        ModelSource::Bundled => super::bundled::files(),
        ModelSource::Folder(path) => ModelFiles::from_path(&path),
        ModelSource::Hub(mut model) => {
            model.gguf_file = gguf_file.map(String::from);
            let fetched = hub::fetch(&model, on_event)?;
            let mut files = ModelFiles::from_path(&fetched)?;
            files.name = match &model.gguf_file {
                Some(file) => format!("{} ({file})", model.display()),
                None => model.display(),
            };
            Ok(files)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(spec: &str) -> HubModel {
        match parse(spec).unwrap() {
            ModelSource::Hub(m) => m,
            other => panic!("{spec}: {other:?}"),
        }
    }

    #[test]
    fn aliases_name_the_family() {
        assert_eq!(hub("gpt2").repo, "openai-community/gpt2");
        assert_eq!(hub("gpt2").cached_as, ["gpt2"]);
        assert_eq!(hub("gpt2-xl").repo, "openai-community/gpt2-xl");
        assert_eq!(hub("distilgpt2").repo, "distilbert/distilgpt2");
        assert_eq!(hub("dialogpt-medium").repo, "microsoft/DialoGPT-medium");
        assert_eq!(hub("DialoGPT-Large").repo, "microsoft/DialoGPT-large");
        let pinned = hub("gpt2-medium@refs/pr/3");
        assert_eq!(pinned.repo, "openai-community/gpt2-medium");
        assert_eq!(pinned.revision.as_deref(), Some("refs/pr/3"));
        assert_eq!(pinned.display(), "openai-community/gpt2-medium@refs/pr/3");
    }

    #[test]
    fn repository_ids_with_and_without_revision() {
        let m = hub("someone/my-gpt2_finetune.v2");
        assert_eq!(m.repo, "someone/my-gpt2_finetune.v2");
        assert_eq!(m.revision, None);
        assert_eq!(m.revision(), "main");
        let m = hub("microsoft/DialoGPT-small@607a30d783dfa663caf39e06633721c8d4cfcd7e");
        assert_eq!(
            m.revision.as_deref(),
            Some("607a30d783dfa663caf39e06633721c8d4cfcd7e")
        );
    }

    #[test]
    fn bundled_and_bad_spellings() {
        assert_eq!(parse("bundled").unwrap(), ModelSource::Bundled);
        for bad in [
            "/no/such/model",
            "./missing",
            "~/missing-model-folder-xyz",
            "a/b/c",
            "nonsense",
            "org/",
            "-x/y",
            "a..b/c",
            "org/name@",
            "",
        ] {
            let err = parse(bad).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad}: {err}");
        }
        assert!(parse("/no/such/model")
            .unwrap_err()
            .to_string()
            .contains("/no/such/model"));
    }

    #[test]
    fn an_existing_folder_wins() {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().to_str().unwrap();
        assert_eq!(
            parse(spec).unwrap(),
            ModelSource::Folder(dir.path().to_path_buf())
        );
    }
}
