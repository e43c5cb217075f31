//! `gpt2-tui models`: the aliases, the GPT-2 models in the Hugging Face cache (with sizes), the
//! bundled model, and the cached quantized models.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::cli::ReportFormat;
use crate::error::{Error, Result};
use crate::model::Gpt2Config;
use crate::runtime::human_bytes;
use crate::weights::bundled;
use crate::weights::hub::{self, HubModel};
use crate::weights::loader::{Bytes, WeightFiles};
use crate::weights::quantized_cache::{file, place};
use crate::weights::source::ALIASES;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CacheState {
    /// Every file needed is in the cache: loads offline.
    Complete,
    /// Some files are there, some are not.
    Partial,
    Absent,
}

#[derive(Debug, Clone, Serialize)]
pub struct CachedModel {
    /// The alias (`gpt2`), or the repository id for other cached models.
    pub name: String,
    pub repo: String,
    pub description: String,
    pub state: CacheState,
    /// Bytes of the files a load uses (complete copies only).
    pub bytes: Option<u64>,
    pub snapshot: Option<PathBuf>,
    /// What is missing, for a partial copy.
    pub missing: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BundledInfo {
    pub name: String,
    pub parameters: u64,
    pub bytes: u64,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_positions: usize,
}

/// A cached quantized model (a GGUF file the first 8- or 4-bit start wrote).
#[derive(Debug, Clone, Serialize)]
pub struct QuantizedFile {
    pub path: PathBuf,
    /// `q8_0`, `q4_0`, `q4_k`.
    pub quant_type: Option<String>,
    pub bytes: u64,
    /// The checkpoint's weight files it was made from.
    pub source: Option<String>,
    /// Whether those files are still there (if not, the file only takes room).
    pub source_present: bool,
    /// Why the next load will rebuild it (truncated, another layout version, ...).
    pub problem: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelsReport {
    pub cache: PathBuf,
    pub offline: bool,
    pub bundled: Option<BundledInfo>,
    pub aliases: Vec<CachedModel>,
    /// Other GPT-2 models found in the cache (fine-tunes, other revisions' repositories).
    pub other: Vec<CachedModel>,
    /// Where quantized models of local folders are cached (those of hub models sit in their
    /// repository's folder of the Hugging Face cache).
    pub quantized_folder: Option<PathBuf>,
    pub quantized: Vec<QuantizedFile>,
}

fn quantized_files(hub_cache: &Path) -> Vec<QuantizedFile> {
    place::all_files(hub_cache)
        .into_iter()
        .map(|path| {
            let described = file::describe(&path);
            let source_present = described
                .source
                .as_deref()
                .is_some_and(|source| source.split(", ").all(|p| Path::new(p).exists()));
            QuantizedFile {
                bytes: std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
                quant_type: described.quant_type,
                source: described.source,
                source_present,
                problem: described.problem,
                path,
            }
        })
        .collect()
}

fn size_of(paths: &[PathBuf]) -> u64 {
    // Snapshot files are links to blobs: metadata follows them to the real size.
    paths
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

fn state_of(
    cache: &Path,
    model: &HubModel,
) -> (CacheState, Option<u64>, Option<PathBuf>, Option<String>) {
    match hub::find_cached(cache, model) {
        Ok(snapshot) => {
            let bytes = hub::check_complete(&snapshot)
                .map(|paths| size_of(&paths))
                .ok();
            (CacheState::Complete, bytes, Some(snapshot), None)
        }
        Err(Some(note)) => (CacheState::Partial, None, None, Some(note)),
        Err(None) => (CacheState::Absent, None, None, None),
    }
}

/// Parameters of a GPT-2 with this config (tied head counted once).
fn parameters(cfg: &Gpt2Config) -> u64 {
    crate::runtime::device::MemoryEstimate::new(cfg, candle_core::DType::U8, 0).weights
}

fn bundled_info() -> Option<BundledInfo> {
    let files = bundled::files().ok()?;
    let Bytes::Static(config) = files.config else {
        return None;
    };
    let cfg = Gpt2Config::from_json(std::str::from_utf8(config).ok()?).ok()?;
    let bytes = match &files.weights {
        WeightFiles::Safetensors(parts) => parts
            .iter()
            .map(|b| match b {
                Bytes::Static(s) => s.len() as u64,
                Bytes::File(p) => std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
            })
            .sum(),
        WeightFiles::PytorchBin(p) | WeightFiles::Gguf(p) => {
            std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
        }
    };
    Some(BundledInfo {
        name: files.name,
        parameters: parameters(&cfg),
        bytes,
        n_layer: cfg.n_layer,
        n_embd: cfg.n_embd,
        n_positions: cfg.n_positions,
    })
}

/// Repository ids with a cache folder (`models--org--name` → `org/name`).
fn cached_repos(cache: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(cache) else {
        return Vec::new();
    };
    let mut repos: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let id = name.strip_prefix("models--")?;
            Some(id.replacen("--", "/", 1))
        })
        .collect();
    repos.sort();
    repos
}

/// Whether a cached repository's snapshot is a GPT-2 (its config says `model_type: gpt2`).
fn is_gpt2_snapshot(snapshot: &Path) -> bool {
    std::fs::read_to_string(snapshot.join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| {
            v.get("model_type")
                .and_then(|m| m.as_str())
                .map(|m| m == "gpt2")
        })
        .unwrap_or(false)
}

pub fn report() -> ModelsReport {
    let cache = hub::cache_dir();
    let mut shown: HashSet<String> = HashSet::new();
    let aliases = ALIASES
        .iter()
        .map(|a| {
            let mut model = HubModel::new(a.repo, None);
            model.cached_as = a.legacy.iter().map(|s| s.to_string()).collect();
            shown.insert(a.repo.to_string());
            shown.extend(a.legacy.iter().map(|s| s.to_string()));
            let (state, bytes, snapshot, missing) = state_of(&cache, &model);
            CachedModel {
                name: a.name.to_string(),
                repo: a.repo.to_string(),
                description: a.description.to_string(),
                state,
                bytes,
                snapshot,
                missing,
            }
        })
        .collect();
    let other = cached_repos(&cache)
        .into_iter()
        .filter(|repo| !shown.contains(repo))
        .filter_map(|repo| {
            let model = HubModel::new(repo.clone(), None);
            let snapshot = hub::cached_snapshot(&cache, &repo, "main")?;
            if !is_gpt2_snapshot(&snapshot) {
                return None;
            }
            let (state, bytes, snapshot, missing) = state_of(&cache, &model);
            Some(CachedModel {
                name: repo.clone(),
                repo,
                description: String::new(),
                state,
                bytes,
                snapshot,
                missing,
            })
        })
        .collect();
    ModelsReport {
        quantized: quantized_files(&cache),
        quantized_folder: place::main_folder(),
        cache,
        offline: hub::offline(),
        bundled: bundled_info(),
        aliases,
        other,
    }
}

fn state_text(m: &CachedModel) -> String {
    match m.state {
        CacheState::Complete => format!(
            "cached, {}",
            m.bytes.map(human_bytes).unwrap_or_else(|| "?".into())
        ),
        CacheState::Partial => "partly cached".into(),
        CacheState::Absent => "not cached (downloads on first use)".into(),
    }
}

pub fn render_text(r: &ModelsReport) -> String {
    let mut out = String::new();
    out.push_str("Bundled (--model bundled, the default):\n");
    match &r.bundled {
        Some(b) => out.push_str(&format!(
            "  {:<17} {} parameters, {} layers, {} wide, window {}, {} embedded in the binary\n",
            b.name,
            b.parameters,
            b.n_layer,
            b.n_embd,
            b.n_positions,
            human_bytes(b.bytes)
        )),
        None => out.push_str("  (none in this build)\n"),
    }
    out.push_str("\nAliases (--model NAME, or NAME@REVISION):\n");
    for m in &r.aliases {
        out.push_str(&format!(
            "  {:<17} {:<30} {:<36} {}\n",
            m.name,
            m.repo,
            m.description,
            state_text(m)
        ));
    }
    out.push_str("\nOther GPT-2 models in the cache (--model ORG/NAME):\n");
    if r.other.is_empty() {
        out.push_str("  (none)\n");
    }
    for m in &r.other {
        out.push_str(&format!("  {:<48} {}\n", m.repo, state_text(m)));
    }
    out.push_str(
        "\nCached quantized models (made by the first start with --dtype q8_0, q4_0 or q4_k):\n",
    );
    if r.quantized.is_empty() {
        out.push_str("  (none)\n");
    }
    for q in &r.quantized {
        let kind = q.quant_type.as_deref().unwrap_or("?");
        out.push_str(&format!(
            "  {kind:<5} {:>9}  {}\n",
            human_bytes(q.bytes),
            q.path.display()
        ));
        let source = q.source.as_deref().unwrap_or("?");
        let gone = if q.source_present {
            ""
        } else {
            " (no longer there: delete the file)"
        };
        out.push_str(&format!("        from {source}{gone}\n"));
        if let Some(problem) = &q.problem {
            out.push_str(&format!("        rebuilt at the next load: {problem}\n"));
        }
    }
    if let Some(folder) = &r.quantized_folder {
        out.push_str(&format!(
            "  Local folders' models are cached in {} (hub models' beside them in the Hugging Face cache); {} moves them, --no-cache turns the cache off.\n",
            folder.display(),
            place::FOLDER_VARIABLE
        ));
    }
    out.push_str(&format!(
        "\nHugging Face cache: {} (set HF_HOME or HF_HUB_CACHE to move it){}\n",
        r.cache.display(),
        if r.offline {
            "; HF_HUB_OFFLINE is set: only cached models load"
        } else {
            ""
        }
    ));
    out.push_str("Any other GPT-2 on the hub works by its id (openai-community/gpt2-large, a fine-tune), or a local folder.\n");
    out
}

pub fn run(format: ReportFormat) -> Result<()> {
    let r = report();
    let text = match format {
        ReportFormat::Text => render_text(&r),
        ReportFormat::Json => serde_json::to_string(&r).expect("plain data") + "\n",
    };
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .map_err(|e| Error::Io {
            path: "stdout".into(),
            source: e,
        })
}
