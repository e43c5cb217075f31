//! `score`, `--top-logprobs` and `--logit-bias`, on the real binary, against transformers'
//! numbers (tests/fixtures/score.json from tools/make_score_fixtures.py, and the greedy top-10 of
//! reference.json from tools/make_fixtures.py).

mod common;

use common::{fixtures, reference, run_cli};
use serde_json::Value;

fn model() -> String {
    fixtures().join("tiny-gpt2").display().to_string()
}

fn jsonl(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

/// Within 1e-4, relative to the value where it is above 1 (the tiny model's large logits carry
/// f32 rounding through 64 positions; the parity tests hold logits to 1e-4).
fn close(a: &Value, b: f64, what: &str) {
    let a = a
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: {a} is not a number"));
    assert!(
        (a - b).abs() < 1e-4 * b.abs().max(1.0),
        "{what}: {a} against transformers' {b}"
    );
}

#[test]
fn score_matches_transformers_token_by_token_through_the_sliding_window() {
    let want: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("score.json")).expect("score.json"),
    )
    .unwrap();
    let file = fixtures().join("ppl.txt");
    let file = file.display().to_string();
    let model = model();
    let args = [
        "score", "--model", &model, "--format", "jsonl", "--stride", "24", "--top", "5", &file,
    ];
    let (code, stdout, stderr) = run_cli(&args, b"");
    assert_eq!(code, 0, "{stderr}");
    let lines = jsonl(&stdout);
    let (done, tokens) = lines.split_last().unwrap();
    let want_ids = want["ids"].as_array().unwrap();
    assert_eq!(tokens.len(), want_ids.len());
    assert!(tokens.len() > 64, "the text must be longer than the window");
    let text = std::fs::read(fixtures().join("ppl.txt")).unwrap();
    let mut rebuilt = Vec::new();
    for (i, (line, want_row)) in tokens
        .iter()
        .zip(want["tokens"].as_array().unwrap())
        .enumerate()
    {
        assert_eq!(line["i"], i);
        assert_eq!(line["id"], want_ids[i], "token {i}");
        let (start, end) = (
            line["start"].as_u64().unwrap() as usize,
            line["end"].as_u64().unwrap() as usize,
        );
        assert_eq!(
            start,
            rebuilt.len(),
            "token {i} starts where the last ended"
        );
        rebuilt.extend_from_slice(&text[start..end]);
        if i == 0 {
            assert!(line["logprob"].is_null() && line["rank"].is_null());
            assert!(line["entropy"].is_null());
            assert_eq!(line["top"], serde_json::json!([]));
            continue;
        }
        close(
            &line["logprob"],
            want_row["logprob"].as_f64().unwrap(),
            "logprob",
        );
        close(
            &line["entropy"],
            want_row["entropy"].as_f64().unwrap(),
            "entropy",
        );
        // The rank is exact but for tokens tied with this one within the logits' tolerance.
        let rank = line["rank"].as_i64().unwrap();
        let (want_rank, ties) = (
            want_row["rank"].as_i64().unwrap(),
            want_row["ties"].as_i64().unwrap(),
        );
        assert!(
            (rank - want_rank).abs() <= ties,
            "rank of token {i}: {rank} against {want_rank} ({ties} near-ties)"
        );
        let top = line["top"].as_array().unwrap();
        let want_top = want_row["top"].as_array().unwrap();
        assert_eq!(top.len(), want_top.len());
        for (got, w) in top.iter().zip(want_top) {
            assert_eq!(got["id"], w[0], "alternatives of token {i}");
            close(
                &got["logprob"],
                w[1].as_f64().unwrap(),
                "alternative logprob",
            );
            assert!(got["text"].is_string());
        }
    }
    assert_eq!(rebuilt, text, "the spans rebuild the input exactly");
    // Some character of the Unicode line is split between tokens: its first half ends inside it.
    let split = tokens.iter().any(|t| {
        let end = t["end"].as_u64().unwrap() as usize;
        end < text.len() && (text[end] & 0xC0) == 0x80
    });
    assert!(split, "the fixture has a character split across tokens");
    assert_eq!(done["done"], true);
    assert_eq!(done["tokens"], tokens.len());
    assert_eq!(done["scored"], tokens.len() - 1);
    close(
        &done["mean_nll"],
        want["mean_nll"].as_f64().unwrap(),
        "mean_nll",
    );
    // The summary is perplexity's, to the last digit.
    let (code, ppl, _) = run_cli(
        &[
            "perplexity",
            "--model",
            &model,
            "--stride",
            "24",
            "--format",
            "json",
            &file,
        ],
        b"",
    );
    assert_eq!(code, 0);
    let ppl: Value = serde_json::from_str(&ppl).unwrap();
    for key in ["mean_nll", "perplexity", "bits_per_byte"] {
        assert_eq!(done[key], ppl[key], "{key}");
    }
}

#[test]
fn score_reads_stdin_and_prints_plain_text_with_a_summary_when_piped() {
    let model = model();
    let text = "naïve café — 東京 🤖 and so on.";
    let (code, stdout, stderr) = run_cli(&["score", "--model", &model, "-"], text.as_bytes());
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with(text), "{stdout:?}");
    assert!(!stdout.contains('\x1b'), "no colour when piped");
    assert!(stdout.contains("\nperplexity: "), "{stdout}");
    let (_, from_stdin, _) = run_cli(&["score", "--model", &model], text.as_bytes());
    assert_eq!(from_stdin, stdout, "no FILE reads stdin too");
    let (code, _, stderr) = run_cli(&["score", "--model", &model, "/no/such/file.txt"], b"");
    assert_ne!(code, 0);
    assert!(stderr.contains("/no/such/file.txt"), "{stderr}");
}

#[test]
fn top_logprobs_equal_transformers_top_n_at_every_greedy_step() {
    let reference = reference();
    let case = &reference["models"]["tiny-gpt2"]["cases"][0];
    let model = model();
    let args = [
        "--model",
        &model,
        "--temperature",
        "0",
        "--repeat-penalty",
        "1",
        "--max-tokens",
        "16",
        "--ignore-eos",
        "--format",
        "jsonl",
        "--top-logprobs",
        "10",
    ];
    let (code, stdout, stderr) = run_cli(&args, case["prompt"].as_str().unwrap().as_bytes());
    assert_eq!(code, 0, "{stderr}");
    let lines = jsonl(&stdout);
    let (_, tokens) = lines.split_last().unwrap();
    assert_eq!(tokens.len(), 16);
    for (step, (line, want)) in tokens
        .iter()
        .zip(case["greedy_top10"].as_array().unwrap())
        .enumerate()
    {
        let top = line["top"].as_array().unwrap();
        assert_eq!(top.len(), 10);
        assert_eq!(top[0]["id"], line["id"], "greedy takes the best");
        for (got, w) in top.iter().zip(want.as_array().unwrap()) {
            assert_eq!(got["id"], w["id"], "step {step}");
            close(
                &got["logprob"],
                w["prob"].as_f64().unwrap().ln(),
                "top logprob",
            );
        }
    }
    // Without the flag the lines stay as the README's contract shows them.
    let (_, plain, _) = run_cli(
        &args[..args.len() - 2],
        case["prompt"].as_str().unwrap().as_bytes(),
    );
    assert!(jsonl(&plain)[0].get("top").is_none());
}

fn greedy_ids(extra: &[&str]) -> (i32, Vec<u64>, String) {
    let model = model();
    let mut args = vec![
        "--model",
        &model,
        "--temperature",
        "0",
        "--repeat-penalty",
        "1",
        "--max-tokens",
        "12",
        "--ignore-eos",
        "--format",
        "jsonl",
    ];
    args.extend(extra);
    let (code, stdout, stderr) = run_cli(&args, b"Hello, world! It's a test.");
    let ids = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok()?["id"].as_u64())
        .collect();
    (code, ids, stderr)
}

#[test]
fn logit_bias_bans_forces_and_names_tokens_by_text() {
    let (code, plain, _) = greedy_ids(&[]);
    assert_eq!(code, 0);
    let first = plain[0].to_string();
    // Banned: the greedy first choice never comes.
    let ban = format!("{first}=-inf");
    let (code, banned, stderr) = greedy_ids(&["--logit-bias", &ban]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!banned.contains(&plain[0]), "{banned:?}");
    // +100 forces a token at every step.
    let (_, forced, _) = greedy_ids(&["--logit-bias", "262=100"]);
    assert_eq!(forced, vec![262; 12]);
    // A quoted string that is one token means that token (" the" is 262).
    let (code, by_text, stderr) = greedy_ids(&["--logit-bias", "\" the\"=100"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(by_text, forced);
}

#[test]
fn bad_logit_biases_are_usage_errors_that_name_the_problem() {
    for (bias, says) in [
        ("\" the cat\"=1", "not one"),
        ("\"\"=1", "empty"),
        ("=abc", "token"),
        ("262=abc", "\"abc\""),
        ("262", "TOKEN=BIAS"),
        ("99999999=1", "not in the vocabulary"),
    ] {
        let (code, ids, stderr) = greedy_ids(&["--logit-bias", bias]);
        assert_eq!(code, 2, "{bias}: {stderr}");
        assert!(ids.is_empty());
        assert!(stderr.contains(says), "{bias}: {stderr}");
    }
}
