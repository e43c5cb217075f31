//! Ctrl+G and `/edit`: the input in `$EDITOR` (else `vi`), on a temporary file. The event loop
//! leaves the interface's terminal modes around this and restores them after, whatever happens.

use std::path::PathBuf;
use std::process::Command;

/// Bigger inputs are refused when read back (the model's window is far smaller anyway).
pub const MAX_BYTES: u64 = 1 << 20;

/// The editor command: `$VISUAL`, then `$EDITOR`, then `vi`; it may carry arguments
/// (`code -w`).
pub fn editor_command() -> String {
    ["VISUAL", "EDITOR"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|value| !value.trim().is_empty())
        .unwrap_or_else(|| "vi".into())
}

/// Runs `editor` on a temporary file holding `text`; returns the file's text afterwards (one
/// final newline, which editors add, removed). Errors say what failed; the file is removed.
pub fn edit_with(editor: &str, text: &str) -> Result<String, String> {
    let mut words = editor.split_whitespace();
    let program = words.next().ok_or("no editor set ($EDITOR is empty)")?;
    let path = temp_path();
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let result = run(program, words.collect(), &path);
    let _ = std::fs::remove_file(&path);
    result
}

fn run(program: &str, args: Vec<&str>, path: &PathBuf) -> Result<String, String> {
    let status = Command::new(program)
        .args(args)
        .arg(path)
        .status()
        .map_err(|e| format!("cannot start the editor {program:?}: {e}"))?;
    if !status.success() {
        return Err(format!(
            "the editor {program:?} failed ({status}); the input is unchanged"
        ));
    }
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if size > MAX_BYTES {
        return Err(format!("the edited text is too large ({size} bytes)"));
    }
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read {} back: {e}", path.display()))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| "the edited text is not UTF-8; the input is unchanged".to_string())?;
    Ok(text.strip_suffix('\n').unwrap_or(&text).to_string())
}

/// A file of this process's own in the temporary folder.
fn temp_path() -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("gpt2-tui-input-{}-{n}.md", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A script that rewrites the file it is given, as an editor would.
    fn script(dir: &std::path::Path, body: &str) -> String {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("editor.sh");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.display().to_string()
    }

    #[test]
    fn the_editor_rewrites_the_text_and_failures_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let editor = script(
            dir.path(),
            "sed -i 's/draft/final/' \"$1\"; echo more >> \"$1\"",
        );
        assert_eq!(edit_with(&editor, "a draft").unwrap(), "a finalmore");
        let failing = script(dir.path(), "exit 3");
        let e = edit_with(&failing, "x").unwrap_err();
        assert!(e.contains("failed") && e.contains("unchanged"), "{e}");
        let e = edit_with("/no/such/editor", "x").unwrap_err();
        assert!(e.contains("cannot start the editor"), "{e}");
    }
}
