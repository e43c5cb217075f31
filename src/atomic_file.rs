//! Atomic file replacement: the new content goes to a temporary file in the same folder, is flushed
//! to disk, and is renamed over the old file, so a kill at any moment leaves either the old file
//! or the new one, whole.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The prefix of temporary files: listings skip names that start with it.
pub const TEMP_PREFIX: &str = ".tmp-";

/// Where `path`'s next version is written before the rename (same folder, so the rename is
/// atomic; the process id and a random part keep two writers apart).
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let unique = format!("{}-{:08x}", std::process::id(), rand::random::<u32>());
    path.with_file_name(format!("{TEMP_PREFIX}{name}.{unique}"))
}

/// Whether the new content is on disk before it takes the old one's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sync {
    /// fsync of the file before the rename, and of the folder after: a crash at any moment
    /// leaves the old content or the new, whole.
    Durable,
    /// No fsync: the system writes the data back when it likes. A crash soon after may leave
    /// the new name on a file with missing data, so only for content that every reader checks
    /// (size, checksum) and that can be made again; it spares the disk's whole write time (7 s
    /// for a 2 GB file here).
    Checked,
}

/// Writes `bytes` to `path` atomically: temp file, fsync, rename, fsync of the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_with(path, Sync::Durable, |file| file.write_all(bytes))
}

/// [`write_atomic`] for content too large to hold at once: `write` streams it into the
/// temporary file (buffered), which replaces `path` only once `write` succeeded (and, with
/// [`Sync::Durable`], once the data is on disk). On failure the temporary file is removed and
/// `path` is left as it was.
pub fn write_atomic_with(
    path: &Path,
    sync: Sync,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let temp = temp_path(path);
    let written = (|| {
        let mut file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&temp)?);
        write(&mut file)?;
        let file = file.into_inner().map_err(|e| e.into_error())?;
        if sync == Sync::Durable {
            file.sync_all()?;
        }
        drop(file);
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written?;
    // The rename itself is on disk once the folder is.
    if let Some(dir) = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && sync == Sync::Durable)
    {
        if let Ok(dir) = std::fs::File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        write_atomic(&path, b"old").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
        let temp = temp_path(&path);
        assert_eq!(temp.parent(), path.parent());
        assert!(temp
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(".tmp-a.json."));
    }

    #[test]
    fn a_folder_that_does_not_exist_is_an_error_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("a.json");
        assert!(write_atomic(&path, b"x").is_err());
    }
}
