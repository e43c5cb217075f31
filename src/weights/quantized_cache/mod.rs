//! The quantized-model cache: the first start with an 8- or 4-bit `--dtype` writes the
//! quantized model as a GGUF file (`file.rs`), keyed by a fingerprint of the checkpoint's files
//! (`key.rs`) and the type, in a cache folder (`place.rs`); later starts read it and skip
//! quantizing (GPT-2 XL: reading 2 GB instead of reading 6.2 GB and quantizing it). A file that
//! is stale, truncated or damaged is said so on stderr, rebuilt and replaced; a cache that
//! cannot be written costs nothing but the warning: the model quantized in memory is used.
//!
//! Not cached: the bundled model (quantizing it takes milliseconds), GGUF checkpoints (their
//! quantized tensors are read as they are), and loads off the CPU.

pub mod file;
pub mod key;
pub mod place;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use candle_core::Device;

use crate::error::Result;
use crate::model::q8::{matrices_quantized_on_this_thread, QuantType};
use crate::model::Gpt2Config;
use crate::weights::layout::LoadedModel;
use crate::weights::loader::{self, ModelFiles, WeightFiles};

/// What the cache did for one load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheUse {
    /// The model was read from this file.
    Read(PathBuf),
    /// The model was quantized and written to this file for the next start.
    Written(PathBuf),
    /// The model was quantized and kept in memory only, for this reason.
    NotCached(String),
}

/// How an 8- or 4-bit model was loaded.
#[derive(Debug, Clone)]
pub struct QuantizedLoad {
    pub kind: QuantType,
    pub cache: CacheUse,
    /// Matrices quantized during this load: none when the cache was read.
    pub quantized_matrices: usize,
    /// Matrices kept in f32 (input width not a multiple of the type's block).
    pub kept_f32: usize,
    /// Said on stderr: a cache file that could not be used, or one that could not be written.
    pub warnings: Vec<String>,
    /// The size of the file written and the time writing it took (fsync included).
    pub written: Option<(u64, Duration)>,
}

impl QuantizedLoad {
    /// One line for stderr: where the model came from.
    pub fn summary(&self) -> String {
        let kind = self.kind.name();
        match &self.cache {
            CacheUse::Read(path) => format!("loaded cached {kind} model {}", path.display()),
            CacheUse::Written(path) => {
                let (bytes, time) = self.written.unwrap_or_default();
                format!(
                    "quantized to {kind}, cached at {} ({} written in {:.1} s)",
                    path.display(),
                    crate::runtime::human_bytes(bytes),
                    time.as_secs_f64()
                )
            }
            CacheUse::NotCached(why) => format!("quantized to {kind} in memory ({why})"),
        }
    }
}

/// Loads `files` (whose config is `config`) in `kind`: from its cache file in one of
/// `folders` (tried in order; [`place::folders`] gives the usual ones, none turns the cache
/// off) when there is a usable one, else quantized from the checkpoint and then cached in the
/// first of `folders` that can be written.
pub fn load(
    files: &ModelFiles,
    config: &Gpt2Config,
    device: &Device,
    kind: QuantType,
    folders: &[PathBuf],
) -> Result<(LoadedModel, QuantizedLoad)> {
    let before = matrices_quantized_on_this_thread();
    let mut warnings = Vec::new();
    let fingerprint = match why_not_cached(files, device, folders) {
        Some(why) => Err(why.to_string()),
        None => key::of(files)
            .map_err(|e| format!("cannot fingerprint the checkpoint: {e}"))
            .and_then(|f| f.ok_or_else(|| "a model inside the binary".to_string())),
    };
    let fingerprint = match fingerprint {
        Ok(f) => f,
        Err(why) => {
            let (loaded, kept_f32) = loader::load_quantized(files, device, kind)?;
            let report = QuantizedLoad {
                kind,
                cache: CacheUse::NotCached(why),
                quantized_matrices: matrices_quantized_on_this_thread() - before,
                kept_f32,
                warnings,
                written: None,
            };
            return Ok((loaded, report));
        }
    };
    let name = place::file_name(&files.name, &fingerprint.identity, kind);
    let mut unusable = Vec::new();
    for path in folders
        .iter()
        .map(|f| f.join(&name))
        .filter(|p| p.is_file())
    {
        match file::read(&path, files, config, kind, &fingerprint)? {
            Ok(cached) => {
                let report = QuantizedLoad {
                    kind,
                    cache: CacheUse::Read(path),
                    quantized_matrices: matrices_quantized_on_this_thread() - before,
                    kept_f32: cached.kept_f32,
                    warnings,
                    written: None,
                };
                return Ok((cached.loaded, report));
            }
            Err(why) => {
                warnings.push(format!(
                    "cached {} model {} cannot be used ({why}): quantizing again to replace it",
                    kind.name(),
                    path.display()
                ));
                unusable.push(path);
            }
        }
    }
    let (loaded, kept_f32) = loader::load_quantized(files, device, kind)?;
    let quantized_matrices = matrices_quantized_on_this_thread() - before;
    let mut failures = Vec::new();
    let mut cache = None;
    let mut written = None;
    for folder in folders {
        let path = folder.join(&name);
        let started = Instant::now();
        match save(folder, &path, &loaded, kind, &fingerprint) {
            Ok(bytes) => {
                written = Some((bytes, started.elapsed()));
                cache = Some(CacheUse::Written(path));
                break;
            }
            Err(e) => failures.push(format!("{}: {e}", path.display())),
        }
    }
    let cache = cache.unwrap_or_else(|| {
        warnings.push(format!(
            "cannot write the quantized model to the cache ({}); it stays in memory only. Set {} to a writable folder, or turn the cache off with --no-cache or `[cache] quantized = false`",
            failures.join("; "),
            place::FOLDER_VARIABLE
        ));
        CacheUse::NotCached("the cache could not be written".into())
    });
    // A broken file left in a folder the new one did not go to would be tried first next time.
    for path in unusable {
        if cache != CacheUse::Written(path.clone()) {
            let _ = std::fs::remove_file(&path);
        }
    }
    let report = QuantizedLoad {
        kind,
        cache,
        quantized_matrices,
        kept_f32,
        warnings,
        written,
    };
    Ok((loaded, report))
}

/// Why a load does not use the cache at all, if it does not.
fn why_not_cached(
    files: &ModelFiles,
    device: &Device,
    folders: &[PathBuf],
) -> Option<&'static str> {
    if folders.is_empty() {
        Some("the cache is turned off")
    } else if !device.is_cpu() {
        Some("the cache serves CPU loads only")
    } else if matches!(files.weights, WeightFiles::Gguf(_)) {
        Some("a GGUF checkpoint's blocks are read as they are")
    } else {
        None
    }
}

/// Writes the cache file `path` in `folder` (made if need be), first removing temporary files
/// that earlier writes killed midway left there; returns its size.
fn save(
    folder: &Path,
    path: &Path,
    loaded: &LoadedModel,
    kind: QuantType,
    fingerprint: &key::Fingerprint,
) -> std::result::Result<u64, String> {
    std::fs::create_dir_all(folder).map_err(|e| e.to_string())?;
    remove_abandoned_temporaries(folder);
    file::write(path, loaded, kind, fingerprint)
}

/// Temporary files of cache writes older than an hour: no write takes that long, so the
/// process that made them died before renaming them.
fn remove_abandoned_temporaries(folder: &Path) {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name();
        let temporary = name.to_str().is_some_and(|n| {
            n.starts_with(crate::atomic_file::TEMP_PREFIX) && n.contains(place::SUFFIX)
        });
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t < an_hour_ago);
        if temporary && old {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
