//! Models from the Hugging Face hub, kept in the standard Hugging Face cache so that files
//! fetched by Python tools are reused and the other way round.
//!
//! - The cache folder is `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
//!   `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub` (as `huggingface_hub`).
//! - A model whose files are all in the cache is used without contacting the hub.
//! - `HF_HUB_OFFLINE=1` never contacts the hub; `HF_TOKEN` (else the token file that
//!   `huggingface-cli login` writes) is sent for gated or private repositories; `HF_ENDPOINT`
//!   points at a mirror.
//! - Only the files a GPT-2 needs are fetched: `config.json`, the weights (`model.safetensors`,
//!   else the safetensors index and its shards, else `pytorch_model.bin`) and the tokenizer
//!   (`tokenizer.json`, else `vocab.json` + `merges.txt`).
//! - Talking to the hub is bounded in time: with no network the error comes within seconds.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use hf_hub::api::sync::ApiBuilder;
use hf_hub::api::RepoInfo;
use hf_hub::{Cache, Repo, RepoType};

use super::loader::shard_files;
use crate::error::{Error, Result};

pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// How long the first request to the hub (the file listing) may take, DNS and connect included.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// A repository on the hub, at an optional revision (branch, tag or commit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubModel {
    pub repo: String,
    pub revision: Option<String>,
    /// Older ids whose cache folders may hold the same files (`gpt2` for
    /// `openai-community/gpt2`, as Python tools cache a model under the id they were given).
    pub cached_as: Vec<String>,
    /// `--gguf-file`: the one GGUF file of the repository to fetch, instead of a checkpoint.
    pub gguf_file: Option<String>,
}

impl HubModel {
    pub fn new(repo: impl Into<String>, revision: Option<String>) -> Self {
        Self {
            repo: repo.into(),
            revision,
            cached_as: Vec::new(),
            gguf_file: None,
        }
    }

    /// `org/name` or `org/name@revision`.
    pub fn display(&self) -> String {
        match &self.revision {
            Some(rev) => format!("{}@{rev}", self.repo),
            None => self.repo.clone(),
        }
    }

    pub fn revision(&self) -> &str {
        self.revision.as_deref().unwrap_or("main")
    }
}

/// What happens while a model is fetched, for a progress display.
#[derive(Debug, Clone, PartialEq)]
pub enum DownloadEvent<'a> {
    /// Asking the hub which files the repository has.
    Contacting {
        model: &'a str,
    },
    /// A file starts downloading (`total` bytes).
    Start {
        file: &'a str,
        total: u64,
    },
    Progress {
        file: &'a str,
        done: u64,
        total: u64,
    },
    Done {
        file: &'a str,
    },
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn home() -> Option<PathBuf> {
    env_nonempty("HOME").map(PathBuf::from)
}

/// The hub cache folder (`.../huggingface/hub`).
pub fn cache_dir() -> PathBuf {
    if let Some(dir) =
        env_nonempty("HF_HUB_CACHE").or_else(|| env_nonempty("HUGGINGFACE_HUB_CACHE"))
    {
        return PathBuf::from(dir);
    }
    hf_home().join("hub")
}

/// `$HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`.
pub fn hf_home() -> PathBuf {
    if let Some(dir) = env_nonempty("HF_HOME") {
        return PathBuf::from(dir);
    }
    let cache = env_nonempty("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| home().map(|h| h.join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("huggingface")
}

/// True when `HF_HUB_OFFLINE` (or `TRANSFORMERS_OFFLINE`) is set to 1/true/yes/on.
pub fn offline() -> bool {
    ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"]
        .iter()
        .any(|name| {
            env_nonempty(name).is_some_and(|v| {
                matches!(
                    v.trim().to_ascii_lowercase().as_str(),
                    "1" | "true" | "yes" | "on"
                )
            })
        })
}

/// `HF_TOKEN`, else the file `huggingface-cli login` writes (`$HF_TOKEN_PATH` or `$HF_HOME/token`).
pub fn token() -> Option<String> {
    if let Some(t) = env_nonempty("HF_TOKEN").or_else(|| env_nonempty("HUGGING_FACE_HUB_TOKEN")) {
        return Some(t.trim().to_string());
    }
    let path = env_nonempty("HF_TOKEN_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| hf_home().join("token"));
    std::fs::read_to_string(path)
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

pub fn endpoint() -> String {
    env_nonempty("HF_ENDPOINT")
        .map(|e| e.trim_end_matches('/').to_string())
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string())
}

/// The cache folder of one repository: `models--org--name`.
pub fn repo_folder(cache: &Path, repo: &str) -> PathBuf {
    cache.join(format!("models--{}", repo.replace('/', "--")))
}

fn is_commit_hash(revision: &str) -> bool {
    revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The snapshot folder that `revision` names in the cache (via `refs/<revision>`, or directly
/// for a commit hash), if it exists.
pub fn cached_snapshot(cache: &Path, repo: &str, revision: &str) -> Option<PathBuf> {
    let folder = repo_folder(cache, repo);
    let commit = if is_commit_hash(revision) {
        revision.to_string()
    } else {
        std::fs::read_to_string(folder.join("refs").join(revision))
            .ok()?
            .trim()
            .to_string()
    };
    if commit.is_empty() || commit.contains(['/', '\\']) || commit.starts_with('.') {
        return None;
    }
    let snapshot = folder.join("snapshots").join(commit);
    snapshot.is_dir().then_some(snapshot)
}

/// The files of a repository that make a GPT-2 we can load, given a way to ask whether a file
/// exists. Shards of an index are not included (they are listed in the index itself).
/// `Err` says what is missing.
pub fn choose_files(has: &dyn Fn(&str) -> bool) -> std::result::Result<Vec<String>, String> {
    let mut files = Vec::new();
    if !has("config.json") {
        return Err("config.json".into());
    }
    files.push("config.json".to_string());
    let weights = [
        "model.safetensors",
        "model.safetensors.index.json",
        "pytorch_model.bin",
    ]
    .into_iter()
    .find(|f| has(f))
    .ok_or("weights (model.safetensors, model.safetensors.index.json or pytorch_model.bin)")?;
    files.push(weights.to_string());
    if has("tokenizer.json") {
        files.push("tokenizer.json".into());
    } else if has("vocab.json") && has("merges.txt") {
        files.push("vocab.json".into());
        files.push("merges.txt".into());
    } else {
        return Err("a tokenizer (tokenizer.json, or vocab.json and merges.txt)".into());
    }
    Ok(files)
}

/// The first GGUF file of a listing, by name.
fn first_gguf(names: &[String]) -> Option<&str> {
    names
        .iter()
        .filter(|n| n.to_ascii_lowercase().ends_with(".gguf"))
        .min()
        .map(String::as_str)
}

/// Whether a folder holds every file a GPT-2 needs (shards of an index included).
/// `Err` says what is missing.
pub fn check_complete(dir: &Path) -> std::result::Result<Vec<PathBuf>, String> {
    let files = match choose_files(&|f| dir.join(f).is_file()) {
        Ok(files) => files,
        // A repository of GGUF files only: the one fetched is the model.
        Err(missing) => {
            return super::loader::first_gguf(dir)
                .map(|f| vec![f])
                .ok_or(missing)
        }
    };
    let mut paths: Vec<PathBuf> = files.iter().map(|f| dir.join(f)).collect();
    if files.iter().any(|f| f == "model.safetensors.index.json") {
        let shards = shard_files(&dir.join("model.safetensors.index.json"))
            .map_err(|e| format!("a readable safetensors index ({e})"))?;
        for shard in shards {
            let path = dir.join(&shard);
            if !path.is_file() {
                return Err(shard);
            }
            paths.push(path);
        }
    }
    Ok(paths)
}

/// A usable snapshot of `model` in the cache, under its id or one it was cached as.
/// `Err` carries a note on a partial copy, if one was found.
pub fn find_cached(cache: &Path, model: &HubModel) -> std::result::Result<PathBuf, Option<String>> {
    let mut partial = None;
    for id in std::iter::once(&model.repo).chain(&model.cached_as) {
        if let Some(snapshot) = cached_snapshot(cache, id, model.revision()) {
            if let Some(file) = &model.gguf_file {
                match snapshot.join(file).is_file() {
                    true => return Ok(snapshot.join(file)),
                    false => continue,
                }
            }
            match check_complete(&snapshot) {
                Ok(_) => return Ok(snapshot),
                Err(missing) => {
                    partial.get_or_insert(format!(
                        "the cache has part of it in {} but not {missing}",
                        snapshot.display()
                    ));
                }
            }
        }
    }
    Err(partial)
}

/// How to get the files when they cannot be downloaded now.
fn how_to_get(model: &HubModel) -> String {
    let rev = model
        .revision
        .as_ref()
        .map(|r| format!(" --revision {r}"))
        .unwrap_or_default();
    format!(
        "to get it, run gpt2-tui once where the hub can be reached, or run `huggingface-cli download {}{rev}` \
         on such a machine and copy its cache here (or point HF_HOME at it), or pass --model with a folder \
         holding config.json, the weights and the tokenizer",
        model.repo
    )
}

/// Finds `model` in the cache, or downloads the files it lacks. Returns the snapshot folder, or
/// the GGUF file for a model with [`HubModel::gguf_file`].
pub fn fetch(model: &HubModel, on_event: &mut dyn FnMut(&DownloadEvent)) -> Result<PathBuf> {
    let cache = cache_dir();
    let partial = match find_cached(&cache, model) {
        Ok(snapshot) => return Ok(snapshot),
        Err(partial) => partial,
    };
    let name = model.display();
    let partial_note = partial.map(|p| format!(" ({p})")).unwrap_or_default();
    if offline() {
        return Err(Error::Other(format!(
            "model {name}: not in the Hugging Face cache at {}{partial_note}, and HF_HUB_OFFLINE is set so the hub is not contacted; {}",
            cache.display(),
            how_to_get(model)
        )));
    }
    on_event(&DownloadEvent::Contacting { model: &name });
    let api = ApiBuilder::from_cache(Cache::new(cache.clone()))
        .with_endpoint(endpoint())
        .with_token(token())
        .with_progress(false)
        .with_retries(2)
        .with_user_agent("gpt2-tui", env!("CARGO_PKG_VERSION"))
        .build()
        .map_err(|e| Error::Other(format!("model {name}: cannot set up the hub client: {e}")))?;
    let repo = Repo::with_revision(
        model.repo.clone(),
        RepoType::Model,
        model.revision().to_string(),
    );
    let info = lookup(&api, &repo)
        .map_err(|failure| lookup_error(model, &cache, &partial_note, failure))?;
    let listed = |f: &str| info.siblings.iter().any(|s| s.rfilename == f);
    let names: Vec<String> = info.siblings.iter().map(|s| s.rfilename.clone()).collect();
    let gguf = match (&model.gguf_file, choose_files(&listed)) {
        (Some(file), _) if listed(file) => Some(file.clone()),
        (Some(file), _) => {
            let ggufs: Vec<&str> = names
                .iter()
                .filter(|n| n.to_ascii_lowercase().ends_with(".gguf"))
                .map(String::as_str)
                .collect();
            return Err(Error::Other(format!(
                "model {name}: the repository has no {file} (--gguf-file); its GGUF files: {}",
                if ggufs.is_empty() { "none".to_string() } else { ggufs.join(", ") }
            )));
        }
        (None, Ok(_)) => None,
        (None, Err(missing)) => Some(first_gguf(&names).map(String::from).ok_or_else(|| {
            Error::Other(format!(
                "model {name}: the repository has no {missing} and no .gguf file, so it is not a GPT-2 that gpt2-tui can load"
            ))
        })?),
    };
    let api_repo = api.repo(repo);
    let snapshot = repo_folder(&cache, &model.repo)
        .join("snapshots")
        .join(&info.sha);
    let get = |file: &str, on_event: &mut dyn FnMut(&DownloadEvent)| -> Result<PathBuf> {
        let have = snapshot.join(file);
        if have.is_file() {
            return Ok(have);
        }
        let progress = Adapter {
            on_event,
            file: file.to_string(),
            done: 0,
            total: 0,
        };
        api_repo
            .download_with_progress(file, progress)
            .map_err(|e| {
                Error::Other(format!(
                    "model {name}: downloading {file} into {} failed: {e}",
                    cache.display()
                ))
            })
    };
    if let Some(file) = gguf {
        return get(&file, on_event);
    }
    let files = choose_files(&listed).unwrap_or_default();
    // The config first: a repository that is not a GPT-2 fails before any large download.
    let config = get("config.json", on_event)?;
    check_gpt2_config(&config, &name)?;
    let snapshot_dir = config
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or(snapshot.clone());
    for file in &files[1..] {
        let path = get(file, on_event)?;
        if file == "model.safetensors.index.json" {
            for shard in shard_files(&path)? {
                if !listed(&shard) {
                    return Err(Error::Weights {
                        file: path.display().to_string(),
                        message: format!("the index names {shard}, which the repository lacks"),
                    });
                }
                get(&shard, on_event)?;
            }
        }
    }
    Ok(snapshot_dir)
}

fn check_gpt2_config(path: &Path, name: &str) -> Result<()> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Config {
        file: path.display().to_string(),
        message: format!("not valid JSON: {e}"),
    })?;
    match value.get("model_type").and_then(|v| v.as_str()) {
        Some("gpt2") | None => Ok(()),
        Some(other) => Err(Error::Config {
            file: path.display().to_string(),
            message: format!(
                "model {name} is a \"{other}\" model, not GPT-2 (model_type must be \"gpt2\")"
            ),
        }),
    }
}

enum LookupFailure {
    /// The hub answered with this HTTP status.
    Status(u16, String),
    /// No answer: DNS, connection, TLS or timeout.
    Transport(String),
    Other(String),
}

/// The repository's file listing, bounded by [`LOOKUP_TIMEOUT`] whatever the network does
/// (name resolution cannot be interrupted, so the request runs on its own thread).
fn lookup(
    api: &hf_hub::api::sync::Api,
    repo: &Repo,
) -> std::result::Result<RepoInfo, LookupFailure> {
    let request = api
        .repo(repo.clone())
        .info_request()
        .timeout(LOOKUP_TIMEOUT);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let result = match request.call() {
            Ok(response) => response
                .into_json::<RepoInfo>()
                .map_err(|e| LookupFailure::Other(format!("unexpected answer from the hub: {e}"))),
            Err(e) => {
                let text = e.to_string();
                match e.into_response() {
                    Some(response) => Err(LookupFailure::Status(response.status(), text)),
                    None => Err(LookupFailure::Transport(text)),
                }
            }
        };
        let _ = tx.send(result);
    });
    let limit = LOOKUP_TIMEOUT + Duration::from_secs(2);
    rx.recv_timeout(limit).unwrap_or_else(|_| {
        Err(LookupFailure::Transport(format!(
            "no answer within {} s",
            limit.as_secs()
        )))
    })
}

fn lookup_error(
    model: &HubModel,
    cache: &Path,
    partial_note: &str,
    failure: LookupFailure,
) -> Error {
    let name = model.display();
    match failure {
        LookupFailure::Status(401 | 403, _) => Error::Other(format!(
            "model {name}: the hub refused access (gated or private repository); accept its terms on the hub and set HF_TOKEN to an access token"
        )),
        LookupFailure::Status(404, _) => Error::Usage(format!(
            "model {name}: no such repository{} on the hub {} (a private one needs HF_TOKEN), and no folder of that name here",
            if model.revision.is_some() { " or revision" } else { "" },
            endpoint()
        )),
        LookupFailure::Status(code, text) => Error::Other(format!(
            "model {name}: the hub answered HTTP {code} ({text}); not in the Hugging Face cache at {}{partial_note}; {}",
            cache.display(),
            how_to_get(model)
        )),
        LookupFailure::Transport(text) => Error::Other(format!(
            "model {name}: not in the Hugging Face cache at {}{partial_note}, and the hub at {} cannot be reached ({}); {}",
            cache.display(),
            endpoint(),
            one_line(&text),
            how_to_get(model)
        )),
        LookupFailure::Other(text) => Error::Other(format!("model {name}: {}", one_line(&text))),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Bridges hf-hub's progress callbacks to [`DownloadEvent`]s.
struct Adapter<'a> {
    on_event: &'a mut dyn FnMut(&DownloadEvent),
    file: String,
    done: u64,
    total: u64,
}

impl hf_hub::api::Progress for Adapter<'_> {
    fn init(&mut self, size: usize, _filename: &str) {
        self.total = size as u64;
        self.done = 0;
        (self.on_event)(&DownloadEvent::Start {
            file: &self.file,
            total: self.total,
        });
    }

    fn update(&mut self, size: usize) {
        self.done += size as u64;
        (self.on_event)(&DownloadEvent::Progress {
            file: &self.file,
            done: self.done,
            total: self.total,
        });
    }

    fn finish(&mut self) {
        (self.on_event)(&DownloadEvent::Done { file: &self.file });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chooses_safetensors_then_index_then_bin() {
        let set = |names: &'static [&'static str]| move |f: &str| names.contains(&f);
        assert_eq!(
            choose_files(&set(&[
                "config.json",
                "model.safetensors",
                "pytorch_model.bin",
                "tokenizer.json",
                "vocab.json",
                "merges.txt",
                "tf_model.h5"
            ]))
            .unwrap(),
            ["config.json", "model.safetensors", "tokenizer.json"]
        );
        assert_eq!(
            choose_files(&set(&[
                "config.json",
                "model.safetensors.index.json",
                "pytorch_model.bin",
                "vocab.json",
                "merges.txt"
            ]))
            .unwrap(),
            [
                "config.json",
                "model.safetensors.index.json",
                "vocab.json",
                "merges.txt"
            ]
        );
        assert_eq!(
            choose_files(&set(&[
                "config.json",
                "pytorch_model.bin",
                "tokenizer.json",
                "flax_model.msgpack"
            ]))
            .unwrap(),
            ["config.json", "pytorch_model.bin", "tokenizer.json"]
        );
        assert!(
            choose_files(&set(&["config.json", "tf_model.h5", "tokenizer.json"]))
                .unwrap_err()
                .contains("weights")
        );
        assert!(
            choose_files(&set(&["config.json", "model.safetensors", "vocab.json"]))
                .unwrap_err()
                .contains("tokenizer")
        );
    }

    #[test]
    fn repo_folders_follow_the_hub_cache_layout() {
        assert_eq!(
            repo_folder(Path::new("/c"), "openai-community/gpt2"),
            Path::new("/c/models--openai-community--gpt2")
        );
        assert_eq!(
            repo_folder(Path::new("/c"), "gpt2"),
            Path::new("/c/models--gpt2")
        );
        assert!(is_commit_hash("607a30d783dfa663caf39e06633721c8d4cfcd7e"));
        assert!(!is_commit_hash("main"));
    }
}
