//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use gpt2_tui::generate::session::Session;
use gpt2_tui::weights::{loader, ModelFiles};
use serde_json::Value;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn reference() -> Value {
    let text = std::fs::read_to_string(fixtures().join("reference.json")).expect("reference.json");
    serde_json::from_str(&text).expect("valid JSON")
}

pub fn load_session(name: &str) -> Session {
    let files = ModelFiles::from_folder(&fixtures().join(name)).expect("fixture folder");
    Session::new(loader::load(&files, &Device::Cpu, DType::F32).expect("fixture loads"))
}

pub fn ids(value: &Value) -> Vec<u32> {
    value
        .as_array()
        .expect("array of ids")
        .iter()
        .map(|v| v.as_u64().expect("id") as u32)
        .collect()
}

pub fn floats(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .expect("array of numbers")
        .iter()
        .map(|v| v.as_f64().expect("number"))
        .collect()
}

pub const MODELS: [&str; 2] = ["tiny-gpt2", "tiny-gpt2-noprefix"];

/// Runs the built binary with `args` and `stdin`, returning (status code, stdout, stderr).
pub fn run_cli(args: &[&str], stdin: &[u8]) -> (i32, String, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_gpt2-tui"))
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .env(
            "XDG_CONFIG_HOME",
            std::env::temp_dir().join("gpt2-tui-test-no-config"),
        )
        // 8- and 4-bit runs cache their models here, never in the user's cache folder.
        .env(
            "GPT2_TUI_CACHE_DIR",
            std::env::temp_dir().join("gpt2-tui-test-quantized-cache"),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let output = child.wait_with_output().expect("binary finishes");
    writer.join().expect("stdin writer");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Greedy decoding with no repetition penalty: what transformers' `generate` does by default.
pub fn greedy(max_tokens: usize) -> gpt2_tui::generate::SamplingParams {
    gpt2_tui::generate::SamplingParams {
        temperature: 0.0,
        repeat_penalty: 1.0,
        max_tokens,
        ..Default::default()
    }
}
