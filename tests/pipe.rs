//! The pipe-mode contract, checked on the real binary.

mod common;

use common::{fixtures, ids, reference, run_cli};
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

const GREEDY: [&str; 4] = ["--temperature", "0", "--repeat-penalty", "1"];

fn greedy_args<'a>(model: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--model", model];
    args.extend(GREEDY);
    args.extend(extra);
    args
}

#[test]
fn stdout_is_only_the_generated_text() {
    let reference = reference();
    let case = &reference["models"]["tiny-gpt2"]["cases"][0];
    let prompt = case["prompt"].as_str().unwrap();
    let model = model();
    let args = greedy_args(&model, &["--max-tokens", "48", "--ignore-eos"]);
    let (code, stdout, _) = run_cli(&args, format!("{prompt}\n").as_bytes());
    assert_eq!(code, 0);
    assert_eq!(
        stdout,
        format!("{}\n", case["greedy_text"].as_str().unwrap())
    );
    // --prompt gives the same, and so does stdin without the trailing newline.
    let mut with_flag = args.clone();
    with_flag.extend(["--prompt", prompt]);
    assert_eq!(run_cli(&with_flag, b"").1, stdout);
    assert_eq!(run_cli(&args, prompt.as_bytes()).1, stdout);
}

#[test]
fn jsonl_lines_carry_ids_text_and_raw_logprobs() {
    let reference = reference();
    let case = &reference["models"]["tiny-gpt2"]["cases"][1];
    let model = model();
    let args = greedy_args(
        &model,
        &["--max-tokens", "48", "--ignore-eos", "--format", "jsonl"],
    );
    let (code, stdout, _) = run_cli(&args, case["prompt"].as_str().unwrap().as_bytes());
    assert_eq!(code, 0);
    let lines = jsonl(&stdout);
    let (done, tokens) = lines.split_last().unwrap();
    assert_eq!(done["done"], true);
    assert_eq!(done["reason"], "max_tokens");
    let got: Vec<u32> = tokens
        .iter()
        .map(|l| l["id"].as_u64().unwrap() as u32)
        .collect();
    assert_eq!(got, ids(&case["greedy_ids"]));
    for (line, want) in tokens
        .iter()
        .zip(case["greedy_logprobs"].as_array().unwrap())
    {
        let (g, w) = (line["logprob"].as_f64().unwrap(), want.as_f64().unwrap());
        assert!((g - w).abs() < 1e-4, "logprob {g} vs {w}");
    }
    let text: String = lines.iter().map(|l| l["text"].as_str().unwrap()).collect();
    assert_eq!(text, case["greedy_text"].as_str().unwrap());
}

#[test]
fn logprobs_are_raw_whatever_the_sampling_settings() {
    let model = model();
    let base = [
        "--model",
        model.as_str(),
        "--prompt",
        "The quick brown fox",
        "--format",
        "jsonl",
        "--max-tokens",
        "8",
        "--ignore-eos",
    ];
    let (_, greedy, _) = run_cli(&[&base[..], &GREEDY].concat(), b"");
    let (_, filtered, _) = run_cli(
        &[
            &base[..],
            &[
                "--top-k",
                "1",
                "--temperature",
                "0.3",
                "--repeat-penalty",
                "1",
            ],
        ]
        .concat(),
        b"",
    );
    let a: Vec<_> = jsonl(&greedy)
        .iter()
        .map(|l| l["logprob"].clone())
        .collect();
    let b: Vec<_> = jsonl(&filtered)
        .iter()
        .map(|l| l["logprob"].clone())
        .collect();
    assert_eq!(
        a, b,
        "top-k 1 must equal greedy, with the same raw log-probabilities"
    );
}

#[test]
fn seeded_sampling_repeats_and_seeds_differ() {
    let model = model();
    let run = |seed: &str| {
        run_cli(
            &[
                "--model",
                &model,
                "--prompt",
                "The quick brown fox",
                "--temperature",
                "1.5",
                "--top-k",
                "0",
                "--seed",
                seed,
                "--max-tokens",
                "30",
                "--ignore-eos",
            ],
            b"",
        )
        .1
    };
    assert_eq!(run("7"), run("7"));
    assert_ne!(run("7"), run("8"));
}

#[test]
fn stop_sequence_split_across_tokens_ends_output_before_it() {
    let reference = reference();
    let case = &reference["models"]["tiny-gpt2"]["cases"][0];
    let session = common::load_session("tiny-gpt2");
    let greedy = ids(&case["greedy_ids"]);
    // A stop text made of the end of token 5 and the start of token 6.
    let before = session.tokenizer().decode(&greedy[..5]);
    let t5 = session.tokenizer().decode(&greedy[4..5]);
    let t6 = session.tokenizer().decode(&greedy[5..6]);
    assert!(
        t5.chars().count() >= 2 && !t6.is_empty(),
        "pick tokens with text: {t5:?} {t6:?}"
    );
    let tail: String = t5
        .chars()
        .rev()
        .take(2)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let stop = format!("{tail}{}", t6.chars().next().unwrap());
    let full = case["greedy_text"].as_str().unwrap();
    let expected = &full[..full.find(&stop).unwrap()];
    assert!(
        expected.len() < before.len(),
        "stop text starts inside token 5"
    );
    let model = model();
    let args = greedy_args(
        &model,
        &[
            "--max-tokens",
            "48",
            "--ignore-eos",
            "--stop",
            &stop,
            "--stop",
            "never-generated-zzz",
            "--format",
            "jsonl",
        ],
    );
    let (code, stdout, _) = run_cli(&args, case["prompt"].as_str().unwrap().as_bytes());
    assert_eq!(code, 0);
    let lines = jsonl(&stdout);
    assert_eq!(lines.last().unwrap()["reason"], "stop");
    let text: String = lines.iter().map(|l| l["text"].as_str().unwrap()).collect();
    assert_eq!(text, expected);
    assert_eq!(
        lines.len() - 1,
        6,
        "generation ends at the token that completes the stop text"
    );
}

#[test]
fn stats_line_on_stderr() {
    let model = model();
    let (code, stdout, stderr) = run_cli(
        &[
            "--model",
            &model,
            "--prompt",
            "Hi",
            "--max-tokens",
            "5",
            "--ignore-eos",
            "--stats",
        ],
        b"",
    );
    assert_eq!(code, 0);
    assert!(!stdout.contains("tokens_per_s"));
    let stats: Value = serde_json::from_str(stderr.lines().last().unwrap()).unwrap();
    for key in [
        "prompt_tokens",
        "generated_tokens",
        "prefill_tokens_per_s",
        "decode_tokens_per_s",
        "device",
        "dtype",
    ] {
        assert!(stats.get(key).is_some(), "missing {key} in {stats}");
    }
    assert_eq!(stats["generated_tokens"], 5);
    assert_eq!(stats["device"], "cpu");
    assert_eq!(stats["dtype"], "f32");
}

#[test]
fn generation_past_the_window_produces_every_token_asked_for() {
    let model = model();
    let (code, stdout, stderr) = run_cli(
        &[
            "--model",
            &model,
            "--prompt",
            "Once upon a time",
            "--max-tokens",
            "150",
            "--ignore-eos",
            "--format",
            "jsonl",
            "--seed",
            "1",
        ],
        b"",
    );
    assert_eq!(code, 0, "{stderr}");
    let lines = jsonl(&stdout);
    assert_eq!(
        lines.len(),
        151,
        "150 tokens in a window of 64, then the done line"
    );
    assert_eq!(lines.last().unwrap()["reason"], "max_tokens");
    assert!(
        stderr.contains("window"),
        "says the window filled: {stderr}"
    );
}

#[test]
fn a_prompt_longer_than_the_window_keeps_its_end_and_says_so() {
    let model = model();
    let long = "word ".repeat(200);
    let (code, stdout, stderr) = run_cli(
        &["--model", &model, "--max-tokens", "3", "--ignore-eos"],
        long.as_bytes(),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(!stdout.is_empty());
    assert!(stderr.contains("keeping the last 64"), "{stderr}");
}

#[test]
fn a_reader_that_closes_early_ends_the_program_quietly() {
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_gpt2-tui"))
        .args([
            "--model",
            &model(),
            "--prompt",
            "Hello",
            "--max-tokens",
            "100000",
            "--ignore-eos",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 1];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    drop(stdout);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
