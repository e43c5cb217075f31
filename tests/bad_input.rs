//! Every kind of bad input gets a one-line error naming the culprit and the right exit status.

mod common;

use std::path::Path;

use common::{fixtures, run_cli};

/// A copy of the tiny fixture model that a test can break.
fn model_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixtures().join("tiny-gpt2")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

fn run_with(model: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec![
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        "Hello",
        "--max-tokens",
        "2",
    ];
    args.extend(extra);
    run_cli(&args, b"")
}

/// Exit status, and a single stderr line that mentions every `needle`.
fn assert_error(result: (i32, String, String), code: i32, needles: &[&str]) {
    let (status, stdout, stderr) = result;
    assert_eq!(status, code, "stderr: {stderr}");
    assert!(stdout.is_empty(), "nothing on stdout: {stdout}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let line = stderr.trim_end();
    assert_eq!(line.lines().count(), 1, "one line: {stderr}");
    for needle in needles {
        assert!(line.contains(needle), "{needle:?} not in {line:?}");
    }
}

#[test]
fn missing_model_folder() {
    assert_error(
        run_with(Path::new("/no/such/model"), &[]),
        2,
        &["/no/such/model"],
    );
}

#[test]
fn missing_config_json() {
    let dir = model_copy();
    std::fs::remove_file(dir.path().join("config.json")).unwrap();
    assert_error(run_with(dir.path(), &[]), 1, &["config.json"]);
}

#[test]
fn missing_weights() {
    let dir = model_copy();
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    assert_error(
        run_with(dir.path(), &[]),
        1,
        &["no weights", "model.safetensors"],
    );
}

#[test]
fn truncated_safetensors() {
    let dir = model_copy();
    let path = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert_error(run_with(dir.path(), &[]), 1, &["model.safetensors"]);
}

#[test]
fn corrupt_safetensors_header() {
    let dir = model_copy();
    let path = dir.path().join("model.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8..40].copy_from_slice(&[b'#'; 32]);
    std::fs::write(&path, bytes).unwrap();
    assert_error(run_with(dir.path(), &[]), 1, &["model.safetensors"]);
}

#[test]
fn garbage_config_json() {
    let dir = model_copy();
    std::fs::write(dir.path().join("config.json"), "{ this is not json").unwrap();
    assert_error(run_with(dir.path(), &[]), 1, &["config.json"]);
}

#[test]
fn config_with_a_bad_value_names_the_key() {
    let dir = model_copy();
    let path = dir.path().join("config.json");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"n_head\": 2", "\"n_head\": 3");
    std::fs::write(&path, text).unwrap();
    assert_error(run_with(dir.path(), &[]), 1, &["config.json", "n_head"]);
}

#[test]
fn weights_that_do_not_match_the_config() {
    let dir = model_copy();
    let path = dir.path().join("config.json");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"n_embd\": 16", "\"n_embd\": 32");
    std::fs::write(&path, text).unwrap();
    assert_error(
        run_with(dir.path(), &[]),
        1,
        &["model.safetensors", "shape", "n_embd 32"],
    );
}

#[test]
fn fewer_layers_in_the_weights_than_the_config() {
    let dir = model_copy();
    let path = dir.path().join("config.json");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"n_layer\": 2", "\"n_layer\": 3");
    std::fs::write(&path, text).unwrap();
    assert_error(run_with(dir.path(), &[]), 1, &["missing tensor", "h.2."]);
}

#[test]
fn tokenizer_larger_than_the_model_vocabulary() {
    let dir = model_copy();
    let path = dir.path().join("config.json");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"vocab_size\": 50257", "\"vocab_size\": 1000");
    std::fs::write(&path, text).unwrap();
    assert_error(
        run_with(dir.path(), &[]),
        1,
        &["50257 tokens", "vocab_size", "1000"],
    );
}

#[test]
fn corrupt_tokenizer_json() {
    let dir = model_copy();
    std::fs::write(dir.path().join("tokenizer.json"), "[1, 2").unwrap();
    assert_error(run_with(dir.path(), &[]), 1, &["tokenizer.json"]);
}

#[test]
fn out_of_range_flags() {
    let model = fixtures().join("tiny-gpt2");
    for (flag, value) in [
        ("--temperature", "-1"),
        ("--top-p", "1.5"),
        ("--top-p", "0"),
        ("--min-p", "2"),
        ("--repeat-penalty", "0"),
        ("--seed", "-3"),
        ("--top-k", "many"),
        ("--temperature", "hot"),
        ("--device", "tpu"),
        ("--dtype", "f8"),
    ] {
        let (code, stdout, stderr) = run_with(&model, &[flag, value]);
        assert_eq!(code, 2, "{flag} {value}: {stderr}");
        assert!(stdout.is_empty());
        assert!(
            stderr.contains(flag) && stderr.contains(value),
            "{flag} {value}: {stderr}"
        );
    }
}

#[test]
fn device_missing_from_this_build_names_the_feature() {
    if cfg!(feature = "cuda") {
        return;
    }
    let model = fixtures().join("tiny-gpt2");
    assert_error(
        run_with(&model, &["--device", "cuda"]),
        2,
        &["--features cuda"],
    );
}

#[test]
fn empty_stdin() {
    let model = fixtures().join("tiny-gpt2");
    let result = run_cli(&["--model", model.to_str().unwrap()], b"");
    assert_error(result, 2, &["empty"]);
    let result = run_cli(&["--model", model.to_str().unwrap()], b"\n");
    assert_error(result, 2, &["empty"]);
}

#[test]
fn stdin_that_is_not_utf8() {
    let model = fixtures().join("tiny-gpt2");
    let result = run_cli(&["--model", model.to_str().unwrap()], b"caf\xe9 au lait");
    assert_error(result, 1, &["UTF-8", "offset 3"]);
}

#[test]
fn bad_config_file_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, "[sampling]\ntemperature = 0.5\ntop_q = 3\n").unwrap();
    let model = fixtures().join("tiny-gpt2");
    let result = run_with(&model, &["--config", path.to_str().unwrap()]);
    assert_error(result, 2, &["config.toml", "line 3", "top_q"]);
}
