//! The GPT-2 family against transformers: tiny random models shaped like distilgpt2, gpt2-medium,
//! gpt2-large, gpt2-xl, DialoGPT and gpt2, stored as safetensors, sharded safetensors with an
//! index, and pytorch_model.bin, in f32, f16 and bf16 (tools/make_family_fixtures.py).
//!
//! `GPT2_TUI_TEST_DEVICE=cuda` (or `metal`) runs the same checks on a GPU; `GPT2_TUI_FIXTURES`
//! points at the fixtures folder when the test binary runs away from its source tree.

use std::path::PathBuf;

use candle_core::{DType, Device};
use gpt2_tui::generate::session::{GenerateOptions, Session, Step};
use gpt2_tui::generate::SamplingParams;
use gpt2_tui::model::KvCache;
use gpt2_tui::runtime::device::{select_device, DeviceRequest};
use gpt2_tui::weights::loader::{self, WeightFiles};
use gpt2_tui::weights::ModelFiles;
use serde_json::Value;

const MODELS: [&str; 6] = [
    "distilgpt2",
    "gpt2-medium-sharded",
    "gpt2-large-bin",
    "gpt2-xl-f16",
    "dialogpt-medium-bin",
    "gpt2-bf16",
];

fn fixtures() -> PathBuf {
    std::env::var_os("GPT2_TUI_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures")))
        .join("family")
}

fn reference() -> Value {
    let text = std::fs::read_to_string(fixtures().join("reference.json")).expect("reference.json");
    serde_json::from_str(&text).unwrap()
}

fn device() -> Device {
    let request: DeviceRequest = std::env::var("GPT2_TUI_TEST_DEVICE")
        .unwrap_or_else(|_| "cpu".into())
        .parse()
        .expect("GPT2_TUI_TEST_DEVICE is a --device value");
    select_device(request).expect("the test device opens")
}

fn load(name: &str, dtype: DType) -> Session {
    let files = ModelFiles::from_folder(&fixtures().join(name)).expect("fixture folder");
    Session::new(loader::load(&files, &device(), dtype).unwrap_or_else(|e| panic!("{name}: {e}")))
}

fn u32s(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn last_logits(session: &Session, prompt: &[u32]) -> Vec<f32> {
    let mut cache = KvCache::new(session.config().n_layer, session.window());
    session
        .model()
        .forward(prompt, &mut cache)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
}

/// Largest |ours - reference| over the stored ids of a case.
fn max_error(logits: &[f32], case: &Value, key: &str) -> f64 {
    let ids = u32s(&case["last_logits"]["ids"]);
    let want = f64s(&case["last_logits"][key]);
    assert!(ids.len() > 100);
    ids.iter()
        .zip(want)
        .map(|(&id, w)| (logits[id as usize] as f64 - w).abs())
        .fold(0.0, f64::max)
}

#[test]
fn the_fixtures_cover_every_format() {
    let formats: Vec<String> = MODELS
        .iter()
        .map(|name| {
            let files = ModelFiles::from_folder(&fixtures().join(name)).unwrap();
            match files.weights {
                WeightFiles::Safetensors(parts) if parts.len() > 1 => "sharded".to_string(),
                WeightFiles::Safetensors(_) => "safetensors".to_string(),
                WeightFiles::PytorchBin(_) => "bin".to_string(),
                WeightFiles::Gguf(_) => "gguf".to_string(),
            }
        })
        .collect();
    for format in ["sharded", "safetensors", "bin"] {
        assert!(formats.iter().any(|f| f == format), "{format}: {formats:?}");
    }
    let reference = reference();
    for (name, heads) in [
        ("distilgpt2", 12),
        ("gpt2-medium-sharded", 16),
        ("gpt2-large-bin", 20),
        ("gpt2-xl-f16", 25),
        ("dialogpt-medium-bin", 16),
        ("gpt2-bf16", 12),
    ] {
        assert_eq!(
            reference["models"][name]["config"]["n_head"], heads,
            "{name}"
        );
    }
    assert_eq!(reference["models"]["distilgpt2"]["config"]["n_layer"], 6);
    assert_eq!(reference["models"]["gpt2-bf16"]["config"]["n_layer"], 12);
}

/// Every storage format and dtype, computed in f32, gives transformers' f32 logits (the f16 and
/// bf16 files convert to f32 exactly, and transformers' reference is computed from the same
/// stored values upcast to f32).
#[test]
fn every_family_member_matches_transformers_in_f32() {
    let reference = reference();
    for name in MODELS {
        let session = load(name, DType::F32);
        let want = &reference["models"][name];
        assert_eq!(
            session.config().n_head as u64,
            want["config"]["n_head"].as_u64().unwrap()
        );
        for case in want["cases"].as_array().unwrap() {
            let logits = last_logits(&session, &u32s(&case["prompt_ids"]));
            assert_eq!(logits.len(), 512);
            let err = max_error(&logits, case, "f32");
            assert!(
                err < 1e-4,
                "{name} {:?}: max logit error {err}",
                case["prompt"]
            );
        }
    }
}

#[test]
fn parameter_counts_match_transformers() {
    let reference = reference();
    for name in MODELS {
        let session = load(name, DType::F32);
        let want = reference["models"][name]["num_parameters"]
            .as_u64()
            .unwrap();
        let config = session.config();
        // DialoGPT's checkpoint stores the (tied) head separately; transformers counts it once.
        let stored_head = if name.starts_with("dialogpt") {
            (config.vocab_size * config.n_embd) as u64
        } else {
            0
        };
        assert_eq!(
            session.parameter_count() as u64,
            want + stored_head,
            "{name}"
        );
    }
}

#[test]
fn tokenizer_and_greedy_generation_match_transformers() {
    let reference = reference();
    for name in MODELS {
        let mut session = load(name, DType::F32);
        for case in reference["models"][name]["cases"].as_array().unwrap() {
            let prompt_text = case["prompt"].as_str().unwrap();
            let prompt = u32s(&case["prompt_ids"]);
            assert_eq!(
                session.tokenizer().encode(prompt_text).unwrap(),
                prompt,
                "{name}"
            );
            let want = u32s(&case["greedy_ids"]);
            let params = SamplingParams {
                temperature: 0.0,
                repeat_penalty: 1.0,
                max_tokens: want.len(),
                ..SamplingParams::default()
            };
            let options = GenerateOptions {
                ignore_eos: true,
                ..GenerateOptions::default()
            };
            let mut generation = session.generate(&prompt, options, Some(0)).unwrap();
            let mut got = Vec::new();
            while let Step::Token(token) = generation.step(&params).unwrap() {
                got.push(token.id);
            }
            assert_eq!(got, want, "{name} {prompt_text:?}");
        }
    }
}

/// Half precision on the CPU (and, with GPT2_TUI_TEST_DEVICE, on a GPU).
///
/// Tolerance: a half-precision run cannot match f32 exactly; every rounding of an activation
/// to 11 (f16) or 8 (bf16) significant bits adds error that grows with depth. What is fair is
/// to be about as far from the exact (f32) logits as transformers' own run at the same
/// precision, which the fixture records per model (`hf_max_abs_error`: 0.02-0.08 for f16,
/// 0.26-0.68 for bf16, on logits with a standard deviation of about 4). We allow twice that,
/// plus a floor of one bf16/f16 ulp at the logits' magnitude (0.0625 for bf16, 0.008 for f16
/// at |x| in [8, 16)), so that a model where transformers happened to be very lucky does not
/// make the bound meaningless.
#[test]
fn half_precision_stays_close_to_f32() {
    let reference = reference();
    for (dtype, key, hf_key, floor) in [
        (DType::F16, "f32", "float16", 0.008),
        (DType::BF16, "f32", "bfloat16", 0.0625),
    ] {
        for name in MODELS {
            let session = load(name, dtype);
            assert_eq!(session.dtype(), dtype);
            let want = &reference["models"][name];
            let hf_err = want["hf_max_abs_error"][hf_key].as_f64().unwrap();
            let tolerance = 2.0 * hf_err + floor;
            for case in want["cases"].as_array().unwrap() {
                let logits = last_logits(&session, &u32s(&case["prompt_ids"]));
                assert!(logits.iter().all(|x| x.is_finite()), "{name} {dtype:?}");
                let err = max_error(&logits, case, key);
                println!("{name} {dtype:?}: max error {err:.4} (transformers {hf_err:.4}, bound {tolerance:.4})");
                assert!(
                    err <= tolerance,
                    "{name} {dtype:?} {:?}: max logit error {err} > {tolerance} (transformers' own: {hf_err})",
                    case["prompt"]
                );
            }
        }
    }
}

/// The real program on each folder: greedy text through pipe mode equals transformers' greedy
/// continuation.
#[test]
fn pipe_mode_runs_every_family_member() {
    if std::env::var_os("GPT2_TUI_TEST_DEVICE").is_some() {
        return; // the binary is not carried to the GPU machine
    }
    let reference = reference();
    for name in MODELS {
        let folder = fixtures().join(name);
        let session = load(name, DType::F32);
        let case = &reference["models"][name]["cases"][0];
        let want = session.tokenizer().decode(&u32s(&case["greedy_ids"]));
        let n = u32s(&case["greedy_ids"]).len().to_string();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_gpt2-tui"))
            .args(["--model", folder.to_str().unwrap(), "--prompt"])
            .arg(case["prompt"].as_str().unwrap())
            .args([
                "--temperature",
                "0",
                "--repeat-penalty",
                "1",
                "--ignore-eos",
            ])
            .args(["--max-tokens", &n, "--device", "cpu"])
            .env("HF_HUB_OFFLINE", "1")
            .env(
                "XDG_CONFIG_HOME",
                std::env::temp_dir().join("gpt2-tui-test-no-config"),
            )
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{name}: {stderr}");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            format!("{want}\n"),
            "{name}"
        );
    }
}
