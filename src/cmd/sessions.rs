//! `gpt2-tui sessions`: the saved conversations, newest first, one line each.

use std::io::Write;

use super::stdout_error;
use crate::cli::OutputFormat;
use crate::error::{Error, Result};
use crate::sessions::{shown_time, Store};

pub fn run(format: OutputFormat) -> Result<()> {
    let store = Store::default_location()
        .ok_or_else(|| Error::Other("no data folder for sessions (is HOME set?)".into()))?;
    let (list, problems) = store.list().map_err(Error::Other)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for s in &list {
        let line = match format {
            OutputFormat::Text => format!(
                "{}\t{}\t{}\t{}\t{}",
                s.id,
                shown_time(s.updated),
                s.model,
                s.turns,
                s.title
            ),
            OutputFormat::Jsonl => serde_json::to_string(s).expect("plain data"),
        };
        writeln!(out, "{line}").map_err(stdout_error)?;
    }
    for p in &problems {
        match format {
            OutputFormat::Text => eprintln!("gpt2-tui: skipped {p}"),
            OutputFormat::Jsonl => writeln!(
                out,
                "{}",
                serde_json::json!({"file": p.file.display().to_string(), "error": p.error})
            )
            .map_err(stdout_error)?,
        }
    }
    out.flush().map_err(stdout_error)
}
