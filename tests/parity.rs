//! The engine against Hugging Face transformers, on fixtures made by tools/make_fixtures.py.

mod common;

use common::{floats, ids, load_session, reference, MODELS};
use gpt2_tui::generate::session::{GenerateOptions, Step};
use gpt2_tui::generate::SamplingParams;
use gpt2_tui::model::KvCache;

fn greedy() -> SamplingParams {
    SamplingParams {
        temperature: 0.0,
        repeat_penalty: 1.0,
        max_tokens: usize::MAX,
        ..SamplingParams::default()
    }
}

#[test]
fn last_position_logits_match_transformers() {
    let reference = reference();
    for name in MODELS {
        let session = load_session(name);
        for case in reference["models"][name]["cases"].as_array().unwrap() {
            let prompt = ids(&case["prompt_ids"]);
            let mut cache = KvCache::new(session.config().n_layer, session.window());
            let logits = session
                .model()
                .forward(&prompt, &mut cache)
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            assert_eq!(logits.len(), session.config().vocab_size);
            let want_ids = ids(&case["last_logits"]["ids"]);
            let want = floats(&case["last_logits"]["values"]);
            assert!(want_ids.len() > 100, "fixture should sample many ids");
            for (id, want) in want_ids.iter().zip(want) {
                let got = logits[*id as usize] as f64;
                assert!(
                    (got - want).abs() < 1e-4,
                    "{name} {:?}: logit of {id}: {got} vs transformers {want}",
                    case["prompt"]
                );
            }
        }
    }
}

#[test]
fn tokenizer_encodes_prompts_like_transformers() {
    let reference = reference();
    for name in MODELS {
        let session = load_session(name);
        for case in reference["models"][name]["cases"].as_array().unwrap() {
            let prompt = case["prompt"].as_str().unwrap();
            assert_eq!(
                session.tokenizer().encode(prompt).unwrap(),
                ids(&case["prompt_ids"]),
                "{name} {prompt:?}"
            );
        }
    }
}

/// Greedy generation through the cached path: same tokens and log-probabilities as transformers.
#[test]
fn greedy_continuations_and_logprobs_match_transformers() {
    let reference = reference();
    for name in MODELS {
        let mut session = load_session(name);
        for case in reference["models"][name]["cases"].as_array().unwrap() {
            let prompt = ids(&case["prompt_ids"]);
            let want = ids(&case["greedy_ids"]);
            let want_logprobs = floats(&case["greedy_logprobs"]);
            let options = GenerateOptions {
                ignore_eos: true,
                ..GenerateOptions::default()
            };
            let mut generation = session.generate(&prompt, options, Some(0)).unwrap();
            let params = SamplingParams {
                max_tokens: want.len(),
                ..greedy()
            };
            let mut got = Vec::new();
            let mut logprobs = Vec::new();
            while let Step::Token(token) = generation.step(&params).unwrap() {
                got.push(token.id);
                logprobs.push(token.logprob as f64);
            }
            assert_eq!(got, want, "{name} {:?}", case["prompt"]);
            for (i, (g, w)) in logprobs.iter().zip(&want_logprobs).enumerate() {
                assert!((g - w).abs() < 1e-4, "{name} step {i}: logprob {g} vs {w}");
            }
            let text = case["greedy_text"].as_str().unwrap();
            assert_eq!(session.tokenizer().decode(&want), text);
        }
    }
}

/// Each step computed from scratch (no cache) must pick the same tokens as the cached path.
#[test]
fn cached_and_uncached_generation_agree() {
    let reference = reference();
    let session = load_session("tiny-gpt2");
    let case = &reference["models"]["tiny-gpt2"]["cases"][4];
    let mut tokens = ids(&case["prompt_ids"]);
    let mut cache = KvCache::new(session.config().n_layer, session.window());
    let mut cached_logits = session
        .model()
        .forward(&tokens, &mut cache)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    for _ in 0..20 {
        let mut fresh = KvCache::new(session.config().n_layer, session.window());
        let uncached = session
            .model()
            .forward(&tokens, &mut fresh)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let max_diff = cached_logits
            .iter()
            .zip(&uncached)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            max_diff < 1e-4,
            "cached vs uncached logits differ by {max_diff}"
        );
        let next = gpt2_tui::generate::sampling::argmax(&cached_logits);
        assert_eq!(next, gpt2_tui::generate::sampling::argmax(&uncached));
        tokens.push(next);
        cached_logits = session
            .model()
            .forward(&[next], &mut cache)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
    }
}

#[test]
fn perplexity_matches_transformers() {
    let reference = reference();
    for name in MODELS {
        let session = load_session(name);
        let want = &reference["models"][name]["perplexity"];
        let text = std::fs::read_to_string(common::fixtures().join(want["file"].as_str().unwrap()))
            .unwrap();
        let stride = want["stride"].as_u64().unwrap() as usize;
        let score = gpt2_tui::generate::perplexity::score(&session, &text, Some(stride)).unwrap();
        assert_eq!(
            score.tokens_scored as u64,
            want["tokens_scored"].as_u64().unwrap()
        );
        assert_eq!(score.bytes as u64, want["bytes"].as_u64().unwrap());
        for (got, key) in [
            (score.mean_nll, "mean_nll"),
            (score.perplexity, "perplexity"),
            (score.bits_per_byte, "bits_per_byte"),
        ] {
            let want = want[key].as_f64().unwrap();
            assert!(
                ((got - want) / want).abs() < 1e-4,
                "{name} {key}: {got} vs {want}"
            );
        }
    }
}

#[test]
fn tokenizer_matches_transformers_on_varied_strings() {
    let reference = reference();
    let session = load_session("tiny-gpt2");
    let other = load_session("tiny-gpt2-noprefix");
    let cases = reference["tokenizer"].as_array().unwrap();
    assert!(cases.len() >= 20);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let want = ids(&case["ids"]);
        assert_eq!(
            session.tokenizer().encode(text).unwrap(),
            want,
            "tokenizer.json on {text:?}"
        );
        assert_eq!(
            other.tokenizer().encode(text).unwrap(),
            want,
            "vocab.json + merges.txt on {text:?}"
        );
        assert_eq!(
            session.tokenizer().decode(&want),
            text,
            "decode round trip of {text:?}"
        );
    }
}
