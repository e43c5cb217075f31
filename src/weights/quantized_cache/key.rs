//! The fingerprint of a checkpoint: what a cached quantized model records about the files it
//! was made from, so that a changed checkpoint is never served from a stale cache file.
//!
//! Hashing a 6.2 GB checkpoint whole would cost seconds at every start, the very time the cache
//! is there to save, so each file is described as cheaply as is still honest:
//! - a file in the Hugging Face cache is a link to a blob named by a hash of its content
//!   (SHA-256 for the large LFS files, git's hash for small ones): the name is the fingerprint,
//!   and nothing is read;
//! - a small file elsewhere (`config.json`, the tokenizer; up to [`SMALL`]) is hashed whole;
//! - a large file elsewhere is its size, its modification time and the SHA-256 of samples of
//!   it: the first and last MiB (a safetensors header names every tensor with its shape and
//!   offset) and [`PIECES`] evenly spaced pieces of 64 KiB. Any ordinary write changes the time;
//!   other weights of the same size copied with their times kept (`cp -p`, `rsync -t`) are
//!   still caught by the samples, since two trainings differ in nearly every weight. What it
//!   misses: a change of a few bytes between the samples that also restores the time.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::weights::loader::{Bytes, ModelFiles, TokenizerFiles, WeightFiles};

/// Files up to this size are hashed whole.
pub const SMALL: u64 = 16 << 20;
/// Evenly spaced samples of a large file, besides its first and last MiB.
pub const PIECES: u64 = 32;
const PIECE: u64 = 64 << 10;
const END: u64 = 1 << 20;

/// What a cache file for a checkpoint is keyed by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// SHA-256 (hex) over every file's description: recorded in the cache file and checked.
    pub key: String,
    /// 16 hex digits naming the cache file: the weights' blob names in the Hugging Face cache
    /// (a new revision with new weights gets a file of its own), else their paths (an edited
    /// checkpoint replaces its file instead of leaving the old one behind).
    pub identity: String,
    /// The checkpoint's files, for display.
    pub source: String,
}

/// The fingerprint of `files`, or `None` for a model inside the binary (nothing on disk).
pub fn of(files: &ModelFiles) -> std::io::Result<Option<Fingerprint>> {
    let mut named: Vec<(&str, &Path)> = Vec::new();
    fn path_of(bytes: &Bytes) -> Option<&Path> {
        match bytes {
            Bytes::File(path) => Some(path.as_path()),
            Bytes::Static(_) => None,
        }
    }
    let Some(config) = path_of(&files.config) else {
        return Ok(None);
    };
    named.push(("config", config));
    let mut weights = Vec::new();
    match &files.weights {
        WeightFiles::Safetensors(parts) => {
            for part in parts {
                let Some(path) = path_of(part) else {
                    return Ok(None);
                };
                weights.push(path);
            }
        }
        WeightFiles::PytorchBin(path) | WeightFiles::Gguf(path) => weights.push(path),
    }
    named.extend(weights.iter().map(|w| ("weights", *w)));
    match &files.tokenizer {
        TokenizerFiles::Json(bytes) => match path_of(bytes) {
            Some(path) => named.push(("tokenizer", path)),
            None => return Ok(None),
        },
        TokenizerFiles::VocabMerges { vocab, merges } => {
            named.push(("vocab", vocab));
            named.push(("merges", merges));
        }
        TokenizerFiles::Gguf(path) => named.push(("tokenizer", path)),
    }
    let mut key = Sha256::new();
    key.update(b"gpt2-tui checkpoint fingerprint 1\n");
    for (role, path) in &named {
        key.update(format!("{role} {}\n", describe(path)?).as_bytes());
    }
    let mut identity = Sha256::new();
    for path in &weights {
        match blob_name(path) {
            Some(blob) => identity.update(blob.as_bytes()),
            None => identity.update(canonical(path).to_string_lossy().as_bytes()),
        }
        identity.update(b"\n");
    }
    let source = weights
        .iter()
        .map(|p| {
            std::path::absolute(p)
                .unwrap_or_else(|_| p.to_path_buf())
                .display()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join(", ");
    Ok(Some(Fingerprint {
        key: hex(&key.finalize()),
        identity: hex(&identity.finalize())[..16].to_string(),
        source,
    }))
}

fn canonical(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
}

/// The name of the Hugging Face cache blob `path` links to: a file in a `blobs` folder named
/// by a 40- or 64-digit hash.
pub fn blob_name(path: &Path) -> Option<String> {
    let target = path.canonicalize().ok()?;
    let name = target.file_name()?.to_str()?;
    let in_blobs = target
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|folder| folder == "blobs");
    let hashed = matches!(name.len(), 40 | 64) && name.bytes().all(|b| b.is_ascii_hexdigit());
    (in_blobs && hashed).then(|| name.to_string())
}

/// One file's description (see the module documentation).
fn describe(path: &Path) -> std::io::Result<String> {
    if let Some(blob) = blob_name(path) {
        return Ok(format!("blob {blob}"));
    }
    let io = |e: std::io::Error| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let mut file = File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    let size = meta.len();
    let mut hash = Sha256::new();
    if size <= SMALL {
        std::io::copy(&mut file, &mut hash).map_err(io)?;
        return Ok(format!("sha256 {}", hex(&hash.finalize())));
    }
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let mut buf = vec![0u8; END as usize];
    let mut sample = |start: u64, len: u64| -> std::io::Result<()> {
        file.seek(SeekFrom::Start(start))?;
        let buf = &mut buf[..len as usize];
        file.read_exact(buf)?;
        hash.update(buf);
        Ok(())
    };
    sample(0, END).map_err(io)?;
    let stride = (size - PIECE) / (PIECES + 1);
    for i in 1..=PIECES {
        sample(i * stride, PIECE).map_err(io)?;
    }
    sample(size - END, END).map_err(io)?;
    Ok(format!(
        "size {size} modified {modified} sampled {}",
        hex(&hash.finalize())
    ))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, bytes: &[u8], modified: std::time::SystemTime) {
        std::fs::write(path, bytes).unwrap();
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(modified)
            .unwrap();
    }

    /// A large file of the same size and time but other content (a copy with times kept) is
    /// told apart by the samples; a small file by its whole hash; an unchanged one is equal.
    #[test]
    fn other_content_of_the_same_size_and_time_is_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let time = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1 << 30);
        let large: Vec<u8> = (0..SMALL as usize + 3 * PIECE as usize)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        write(&path, &large, time);
        let first = describe(&path).unwrap();
        assert_eq!(describe(&path).unwrap(), first);
        assert!(first.starts_with("size "), "{first}");
        // Another training differs in nearly every weight: one byte in 4 KiB stands for that.
        let mut other = large.clone();
        other.iter_mut().step_by(4096).for_each(|b| *b ^= 0x5a);
        write(&path, &other, time);
        assert_ne!(describe(&path).unwrap(), first);
        let small = dir.path().join("config.json");
        write(&small, b"{\"n_head\": 12}", time);
        let before = describe(&small).unwrap();
        write(&small, b"{\"n_head\": 16}", time);
        assert_ne!(describe(&small).unwrap(), before);
    }

    #[test]
    fn hugging_face_blobs_are_named_by_their_hash() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = dir.path().join("blobs");
        std::fs::create_dir(&blobs).unwrap();
        let hash = "a".repeat(64);
        std::fs::write(blobs.join(&hash), b"weights").unwrap();
        let snapshot = dir.path().join("snapshots").join("abc");
        std::fs::create_dir_all(&snapshot).unwrap();
        let link = snapshot.join("model.safetensors");
        #[cfg(unix)]
        std::os::unix::fs::symlink(blobs.join(&hash), &link).unwrap();
        #[cfg(not(unix))]
        std::fs::copy(blobs.join(&hash), &link).unwrap();
        if cfg!(unix) {
            assert_eq!(blob_name(&link), Some(hash.clone()));
            assert_eq!(describe(&link).unwrap(), format!("blob {hash}"));
        }
        std::fs::write(dir.path().join("plain.bin"), b"x").unwrap();
        assert_eq!(blob_name(&dir.path().join("plain.bin")), None);
    }
}
