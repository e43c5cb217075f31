//! Looking inside the model, against transformers: alternatives, attention, anatomy, tokens.

mod common;

use common::{floats, greedy, ids, load_session, reference, run_cli, MODELS};
use gpt2_tui::engine::inspect::{token_rows, Anatomy};
use gpt2_tui::generate::session::{GenerateOptions, Step};

fn options(top_n: usize) -> GenerateOptions {
    GenerateOptions {
        ignore_eos: true,
        top_n,
        ..GenerateOptions::default()
    }
}

#[test]
fn top_ten_alternatives_at_every_step_match_transformers() {
    let reference = reference();
    for name in MODELS {
        let mut session = load_session(name);
        for case in reference["models"][name]["cases"].as_array().unwrap() {
            let want_steps = case["greedy_top10"].as_array().unwrap();
            let mut generation = session
                .generate(&ids(&case["prompt_ids"]), options(10), None)
                .unwrap();
            let mut step = 0;
            while let Step::Token(token) = generation.step(&greedy(want_steps.len())).unwrap() {
                let want = want_steps[step].as_array().unwrap();
                assert_eq!(token.top.len(), 10);
                for ((id, prob), w) in token.top.iter().zip(want) {
                    assert_eq!(*id as u64, w["id"].as_u64().unwrap(), "{name} step {step}");
                    let wp = w["prob"].as_f64().unwrap();
                    assert!(
                        (*prob as f64 - wp).abs() < 1e-4,
                        "{name} step {step}: {prob} vs {wp}"
                    );
                }
                // The colouring uses the sampled token's probability: exp(logprob).
                let p = (token.logprob as f64).exp();
                assert!((p - want[0]["prob"].as_f64().unwrap()).abs() < 1e-4);
                step += 1;
            }
            assert_eq!(step, want_steps.len());
        }
    }
}

#[test]
fn attention_weights_match_transformers() {
    let reference = reference();
    for name in MODELS {
        let session = load_session(name);
        let want = &reference["models"][name]["attention"];
        let maps = session.model().attention_maps(&ids(&want["ids"])).unwrap();
        let layers = want["weights"].as_array().unwrap();
        assert_eq!(maps.len(), layers.len());
        for (l, (map, heads)) in maps.iter().zip(layers).enumerate() {
            let got = map.to_vec3::<f32>().unwrap();
            for (h, rows) in heads.as_array().unwrap().iter().enumerate() {
                for (q, row) in rows.as_array().unwrap().iter().enumerate() {
                    for (k, w) in floats(row).iter().enumerate() {
                        let g = got[h][q][k] as f64;
                        assert!(
                            (g - w).abs() < 1e-4,
                            "{name} layer {l} head {h} query {q} key {k}: {g} vs {w}"
                        );
                        if k > q {
                            assert_eq!(g, 0.0, "the future is masked");
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn anatomy_totals_equal_the_checkpoint_and_transformers() {
    let reference = reference();
    for name in MODELS {
        let session = load_session(name);
        let anatomy = Anatomy::of(session.config(), session.model().has_tied_head());
        let want = reference["models"][name]["num_parameters"]
            .as_u64()
            .unwrap() as usize;
        assert_eq!(anatomy.total, want, "{name}");
        assert_eq!(
            session.parameter_count(),
            want,
            "{name}: the loader's count of stored tensors"
        );
        let tensors: u64 = reference["models"][name]["tensor_parameters"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(anatomy.total as u64, tensors);
    }
}

#[test]
fn tokenize_matches_transformers_with_offsets_that_cut_the_text() {
    let reference = reference();
    let session = load_session("tiny-gpt2");
    for case in reference["tokenizer"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let rows = token_rows(session.tokenizer(), text).unwrap();
        assert_eq!(
            rows.iter().map(|r| r.id).collect::<Vec<_>>(),
            ids(&case["ids"]),
            "{text:?}"
        );
        let offsets: Vec<(usize, usize)> = rows.iter().map(|r| (r.start, r.end)).collect();
        let want: Vec<(usize, usize)> = case["offsets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                (
                    o[0].as_u64().unwrap() as usize,
                    o[1].as_u64().unwrap() as usize,
                )
            })
            .collect();
        assert_eq!(offsets, want, "{text:?}");
        for row in &rows {
            assert!(
                text.get(row.start..row.end).is_some(),
                "offsets {}..{} cut {text:?} inside a character",
                row.start,
                row.end
            );
        }
    }
}

#[test]
fn tokenize_command_prints_one_json_line_per_token() {
    let model = common::fixtures().join("tiny-gpt2");
    let (code, stdout, stderr) = run_cli(
        &["tokenize", "--model", model.to_str().unwrap()],
        "Hello, world! It's a test.\n".as_bytes(),
    );
    assert_eq!(code, 0, "{stderr}");
    let rows: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: Vec<u64> = rows.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    assert_eq!(got, vec![15496, 11, 995, 0, 632, 338, 257, 1332, 13]);
    assert_eq!(rows[1]["text"], ",");
    assert_eq!(
        (rows[2]["start"].as_u64(), rows[2]["end"].as_u64()),
        (Some(6), Some(12))
    );
}

#[test]
fn info_command_reports_the_parts_and_total() {
    let model = common::fixtures().join("tiny-gpt2-noprefix");
    let (code, stdout, stderr) = run_cli(
        &[
            "info",
            "--model",
            model.to_str().unwrap(),
            "--format",
            "json",
        ],
        b"",
    );
    assert_eq!(code, 0, "{stderr}");
    let info: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(info["parameters"], 607_236);
    assert_eq!(info["memory_bytes"], 607_236 * 4);
    let parts_sum: u64 = info["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["parameters"].as_u64().unwrap())
        .sum();
    assert_eq!(parts_sum, 607_236);
}

/// `info` names the CPU kernels that run, and the variables that lower them take effect.
#[test]
fn info_names_the_cpu_kernels_and_the_variables_lower_them() {
    let model = common::fixtures().join("tiny-gpt2-noprefix");
    let kernels = |env: &[(&str, &str)]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_gpt2-tui"));
        command.args([
            "info",
            "--format",
            "json",
            "--model",
            model.to_str().unwrap(),
        ]);
        command.env_remove("GPT2_TUI_PORTABLE_KERNELS");
        command.env_remove("GPT2_TUI_KERNELS");
        command.envs(env.iter().copied());
        let out = command.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        info["cpu_kernels"].as_str().unwrap().to_string()
    };
    let detected = kernels(&[]);
    assert_eq!(detected, gpt2_tui::kernels::level().name());
    assert_eq!(kernels(&[("GPT2_TUI_PORTABLE_KERNELS", "1")]), "portable");
    let capped = kernels(&[("GPT2_TUI_KERNELS", "avx2")]);
    match detected.as_str() {
        "portable" => assert_eq!(capped, "portable"),
        _ => assert_eq!(capped, "avx2"),
    }
}

/// Choosing the second-best candidate at step k and continuing must give what greedy decoding
/// gives from that forced prefix in a fresh session.
#[test]
fn branching_on_an_alternative_equals_greedy_from_the_forced_prefix() {
    let reference = reference();
    let case = &reference["models"]["tiny-gpt2"]["cases"][3];
    let prompt = ids(&case["prompt_ids"]);
    let k = 5;
    let mut session = load_session("tiny-gpt2");
    let mut generation = session.generate(&prompt, options(10), None).unwrap();
    let mut reply = Vec::new();
    let mut alternative = None;
    while let Step::Token(token) = generation.step(&greedy(12)).unwrap() {
        if reply.len() == k {
            alternative = Some(token.top[1].0);
        }
        reply.push(token.id);
    }
    drop(generation);
    let mut forced = prompt.clone();
    forced.extend(&reply[..k]);
    forced.push(alternative.unwrap());
    // The branch reuses the cached prompt and the shared part of the reply.
    let branch = session.generate(&forced, options(0), None).unwrap();
    assert_eq!(
        branch.stats().prefill_tokens,
        1,
        "only the chosen candidate is new"
    );
    drop(branch);
    let continue_from = |session: &mut gpt2_tui::generate::session::Session| {
        let mut g = session.generate(&forced, options(0), None).unwrap();
        let mut out = Vec::new();
        while let Step::Token(t) = g.step(&greedy(15)).unwrap() {
            out.push(t.id);
        }
        out
    };
    let branched = continue_from(&mut session);
    let fresh = continue_from(&mut load_session("tiny-gpt2"));
    assert_eq!(branched, fresh);
    assert_ne!(
        forced[prompt.len() + k],
        reply[k],
        "the branch takes another token at step k"
    );
}
