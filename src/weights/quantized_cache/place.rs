//! Where cached quantized models live and what they are called:
//! - `$GPT2_TUI_CACHE_DIR` when set (tests, or a disk with room), alone;
//! - else, for a checkpoint in the Hugging Face cache, its repository's folder there
//!   (`models--org--name/gpt2-tui-quantized/`), so that deleting the repository from the cache
//!   (`huggingface-cli delete-cache`) deletes its quantized copies too; hub tools ignore
//!   folders they do not know;
//! - then the platform cache folder, `quantized/` in `~/.cache/gpt2-tui` on Linux
//!   (`~/Library/Caches/gpt2-tui` on macOS). Local model folders are never written into: they
//!   are the user's, and may be read-only or shared.

use std::path::{Path, PathBuf};

use crate::model::q8::QuantType;
use crate::weights::loader::{Bytes, ModelFiles, WeightFiles};

/// Overrides every other folder.
pub const FOLDER_VARIABLE: &str = "GPT2_TUI_CACHE_DIR";
/// The folder inside a Hugging Face cache repository.
pub const HUB_FOLDER: &str = "gpt2-tui-quantized";
/// What every cache file's name ends with after its type.
pub const SUFFIX: &str = ".gguf";

/// `$GPT2_TUI_CACHE_DIR`, if set to something.
fn folder_from_environment() -> Option<PathBuf> {
    std::env::var_os(FOLDER_VARIABLE)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The platform cache folder's `quantized/`.
pub fn user_folder() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "gpt2-tui").map(|d| d.cache_dir().join("quantized"))
}

/// The folder new cache files go to for models outside the Hugging Face cache.
pub fn main_folder() -> Option<PathBuf> {
    folder_from_environment().or_else(user_folder)
}

/// The folders a cache file for `files` may be in, in the order they are tried.
pub fn folders(files: &ModelFiles) -> Vec<PathBuf> {
    if let Some(folder) = folder_from_environment() {
        return vec![folder];
    }
    let first_weights = match &files.weights {
        WeightFiles::Safetensors(parts) => match parts.first() {
            Some(Bytes::File(path)) => Some(path.as_path()),
            _ => None,
        },
        WeightFiles::PytorchBin(path) | WeightFiles::Gguf(path) => Some(path.as_path()),
    };
    first_weights
        .and_then(hub_repository)
        .map(|repo| repo.join(HUB_FOLDER))
        .into_iter()
        .chain(user_folder())
        .collect()
}

/// The repository folder of a file in a Hugging Face cache snapshot
/// (`models--org--name/snapshots/<commit>/file`).
fn hub_repository(file: &Path) -> Option<PathBuf> {
    let snapshots = file.parent()?.parent()?;
    let repo = snapshots.parent()?;
    let is_repo = repo
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("models--"));
    (snapshots.file_name()? == "snapshots" && is_repo).then(|| repo.to_path_buf())
}

/// `gpt2-124m-random-0123456789abcdef.q8_0.gguf`: the model's name made safe for a file name,
/// the fingerprint's identity, the type.
pub fn file_name(model: &str, identity: &str, kind: QuantType) -> String {
    let safe: String = model
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' => c,
            _ => '-',
        })
        .take(80)
        .collect();
    let safe = safe.trim_matches(['-', '.']);
    format!("{safe}-{identity}.{}{SUFFIX}", kind.name())
}

/// Every cache file there is: in `$GPT2_TUI_CACHE_DIR`, the platform cache folder, and each
/// repository of the Hugging Face cache `hub`, sorted by path.
pub fn all_files(hub: &Path) -> Vec<PathBuf> {
    let mut folders: Vec<PathBuf> = folder_from_environment()
        .into_iter()
        .chain(user_folder())
        .collect();
    if let Ok(entries) = std::fs::read_dir(hub) {
        folders.extend(
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.path().join(HUB_FOLDER)),
        );
    }
    let mut files: Vec<PathBuf> = folders
        .iter()
        .filter_map(|folder| std::fs::read_dir(folder).ok())
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_cache_file(p))
        .collect();
    files.sort();
    files.dedup();
    files
}

/// A finished cache file (not a temporary one being written).
fn is_cache_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    path.is_file() && name.ends_with(SUFFIX) && !name.starts_with('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_and_say_the_type() {
        assert_eq!(
            file_name("openai-community/gpt2", "0123456789abcdef", QuantType::Q8_0),
            "openai-community-gpt2-0123456789abcdef.q8_0.gguf"
        );
        assert_eq!(
            file_name("../my model", "ab", QuantType::Q4K),
            "my-model-ab.q4_k.gguf"
        );
    }

    #[test]
    fn a_hub_snapshot_file_belongs_to_its_repository() {
        let file = Path::new("/c/hub/models--org--name/snapshots/abc/model.safetensors");
        assert_eq!(
            hub_repository(file),
            Some(PathBuf::from("/c/hub/models--org--name"))
        );
        assert_eq!(
            hub_repository(Path::new("/models/gpt2/model.safetensors")),
            None
        );
    }
}
