//! Engine behaviour beyond parity: prefix reuse, the sampled distribution, the window.

mod common;

use common::load_session;
use gpt2_tui::generate::sampling::log_sum_exp;
use gpt2_tui::generate::session::{GenerateOptions, Step};
use gpt2_tui::generate::{Sampler, SamplingParams};

fn run_to_end(
    generation: &mut gpt2_tui::generate::session::Generation<'_>,
    params: &SamplingParams,
) -> Vec<u32> {
    let mut ids = Vec::new();
    while let Step::Token(t) = generation.step(params).unwrap() {
        ids.push(t.id);
    }
    ids
}

/// Five greedy tokens, never stopped by `<|endoftext|>`.
fn five_greedy_tokens() -> (SamplingParams, GenerateOptions) {
    let params = SamplingParams {
        max_tokens: 5,
        ..SamplingParams::greedy()
    };
    let options = GenerateOptions {
        ignore_eos: true,
        ..GenerateOptions::default()
    };
    (params, options)
}

#[test]
fn a_request_extending_the_cached_tokens_prefills_only_the_new_ones() {
    let mut session = load_session("tiny-gpt2");
    let prompt = session
        .tokenizer()
        .encode("The quick brown fox jumps")
        .unwrap();
    let (params, options) = five_greedy_tokens();
    let mut first = session.generate(&prompt, options.clone(), Some(1)).unwrap();
    assert_eq!(first.stats().prefill_tokens, prompt.len());
    let reply = run_to_end(&mut first, &params);
    drop(first);
    // The next turn: the whole conversation so far plus three new tokens.
    let mut next_prompt = prompt.clone();
    next_prompt.extend(&reply);
    next_prompt.extend(session.tokenizer().encode(" over the dog").unwrap());
    let new_tokens = next_prompt.len() - prompt.len() - reply.len();
    let second = session
        .generate(&next_prompt, options.clone(), Some(1))
        .unwrap();
    // The last reply token was sampled but never run, so it is prefilled with the new ones.
    assert_eq!(second.stats().prefill_tokens, new_tokens + 1);
    drop(second);
    // Regenerating from the same prompt runs at most one token.
    let again = session.generate(&next_prompt, options, Some(2)).unwrap();
    assert!(again.stats().prefill_tokens <= 1);
}

#[test]
fn reused_prefix_gives_the_same_tokens_as_a_fresh_session() {
    let mut warm = load_session("tiny-gpt2");
    let mut cold = load_session("tiny-gpt2");
    let params = SamplingParams {
        max_tokens: 12,
        ..SamplingParams::greedy()
    };
    let options = GenerateOptions {
        ignore_eos: true,
        ..GenerateOptions::default()
    };
    let a = warm
        .tokenizer()
        .encode("It was the best of times, it was")
        .unwrap();
    run_to_end(
        &mut warm.generate(&a, options.clone(), None).unwrap(),
        &params,
    );
    let b = warm
        .tokenizer()
        .encode("It was the best of times, it was the worst")
        .unwrap();
    let from_warm = run_to_end(
        &mut warm.generate(&b, options.clone(), None).unwrap(),
        &params,
    );
    let from_cold = run_to_end(&mut cold.generate(&b, options, None).unwrap(), &params);
    assert_eq!(from_warm, from_cold);
}

/// Pearson's chi-square of `draws` tokens drawn with `draw` against the softmax of
/// `logits / expect_temperature`, over the 15 most likely tokens and one bin for the rest.
fn chi_square(logits: &[f32], draw: &SamplingParams, expect_temperature: f32, draws: usize) -> f64 {
    let scaled: Vec<f32> = logits.iter().map(|x| x / expect_temperature).collect();
    let lse = log_sum_exp(&scaled);
    let probs: Vec<f64> = scaled.iter().map(|x| ((x - lse) as f64).exp()).collect();
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    let bins = &order[..15];
    let mut sampler = Sampler::new(12345);
    let mut counts = [0usize; 16];
    for _ in 0..draws {
        let id = sampler.sample(logits, &[], draw) as usize;
        counts[bins.iter().position(|&b| b == id).unwrap_or(15)] += 1;
    }
    let mut expected: Vec<f64> = bins.iter().map(|&b| probs[b] * draws as f64).collect();
    expected.push(draws as f64 - expected.iter().sum::<f64>());
    counts
        .iter()
        .zip(&expected)
        .map(|(&o, &e)| (o as f64 - e).powi(2) / e)
        .sum()
}

#[test]
fn sampled_distribution_matches_the_softmax() {
    let mut session = load_session("tiny-gpt2");
    let prompt = session.tokenizer().encode("To be, or not to be").unwrap();
    let (logits, _) = session.logits_after(&prompt).unwrap();
    // The model's 300 most likely tokens keep the test fast; the sampler sees them as its vocabulary.
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    let logits: Vec<f32> = order[..300].iter().map(|&i| logits[i]).collect();
    let unfiltered = |temperature| SamplingParams {
        temperature,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        repeat_penalty: 1.0,
        ..SamplingParams::default()
    };
    // 15 degrees of freedom: the 0.999 quantile is 37.7.
    for temperature in [1.0, 0.7, 1.6] {
        let chi2 = chi_square(&logits, &unfiltered(temperature), temperature, 40_000);
        assert!(chi2 < 37.7, "temperature {temperature}: chi-square {chi2}");
    }
    // The test has the power to see a wrong temperature.
    let chi2 = chi_square(&logits, &unfiltered(1.0), 0.85, 40_000);
    assert!(
        chi2 > 37.7,
        "draws at temperature 1 must not pass for 0.85: {chi2}"
    );
}

#[test]
fn a_live_change_applies_from_the_next_token() {
    let mut session = load_session("tiny-gpt2");
    let prompt = session.tokenizer().encode("Hello").unwrap();
    let options = GenerateOptions {
        ignore_eos: true,
        ..GenerateOptions::default()
    };
    let hot = SamplingParams {
        temperature: 2.0,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        max_tokens: 40,
        ..SamplingParams::default()
    };
    let greedy = SamplingParams {
        max_tokens: 40,
        repeat_penalty: 1.0,
        ..SamplingParams::greedy()
    };
    let options = GenerateOptions {
        top_n: 1,
        ..options
    };
    let mut generation = session.generate(&prompt, options, Some(5)).unwrap();
    for _ in 0..10 {
        generation.step(&hot).unwrap();
    }
    let Step::Token(token) = generation.step(&greedy).unwrap() else {
        panic!("expected a token")
    };
    assert_eq!(
        token.params, greedy,
        "the token reports the settings it was drawn with"
    );
    // Under greedy settings (no penalty) the token is the most probable one.
    assert_eq!(token.id, token.top[0].0);
}

/// A branch continues a reply whose first part is already in the prompt and on screen: a stop
/// sequence that begins in that part and ends in the new text must still end the reply.
#[test]
fn a_continued_reply_stops_on_a_stop_sequence_begun_before_the_branch_point() {
    let mut session = load_session("tiny-gpt2");
    let prompt = session
        .tokenizer()
        .encode("Hello there, my friend")
        .unwrap();
    let params = common::greedy(12);
    let mut generation = session
        .generate(&prompt, GenerateOptions::default(), Some(0))
        .unwrap();
    let reply = run_to_end(&mut generation, &params);
    drop(generation);
    // Keep a few tokens; the stop straddles the end of what is kept and what greedy writes next.
    let tokenizer = session.shared_tokenizer();
    let (kept_ids, rest) = reply.split_at(4);
    let kept = tokenizer.decode(kept_ids);
    let next = tokenizer.decode(rest);
    let tail: String = kept
        .chars()
        .rev()
        .take(2)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let head: String = next.chars().take(2).collect();
    let stop = format!("{tail}{head}");
    assert!(
        !next.contains(&stop),
        "the stop must only exist across the branch point"
    );
    let continue_with = |prime: bool, session: &mut gpt2_tui::generate::session::Session| {
        let tokens = [prompt.as_slice(), kept_ids].concat();
        let options = GenerateOptions {
            stop: vec![stop.clone()],
            ..GenerateOptions::default()
        };
        let mut generation = session.generate(&tokens, options, Some(0)).unwrap();
        if prime {
            generation.continue_after(&kept);
        }
        let mut text = String::new();
        loop {
            match generation.step(&params).unwrap() {
                Step::Token(t) => text.push_str(&t.text),
                Step::Done { reason, text: last } => return (reason, text + &last),
            }
        }
    };
    let (reason, text) = continue_with(true, &mut session);
    assert_eq!(reason.as_str(), "stop", "wrote {text:?} past {stop:?}");
    assert_eq!(
        text, "",
        "nothing of the stop or the kept text is written again"
    );
    // Without being told what was shown, the same continuation runs past the stop.
    let (reason, _) = continue_with(false, &mut session);
    assert_ne!(reason.as_str(), "stop");
}

#[test]
fn a_branch_counts_its_decided_tokens_and_ends_at_a_chosen_end_of_text() {
    let mut session = load_session("tiny-gpt2");
    let prompt = session.tokenizer().encode("Once upon a time").unwrap();
    let (params, options) = five_greedy_tokens();
    let mut first = session.generate(&prompt, options.clone(), Some(1)).unwrap();
    let reply = run_to_end(&mut first, &params);
    drop(first);
    assert_eq!(reply.len(), 5);
    // Two tokens decided: the branch writes only the three that are left of max_tokens, and
    // its reply (tokens and text) starts with the decided ones.
    let decided = &reply[..2];
    let decided_text = session.tokenizer().decode(decided);
    let mut branch = session
        .branch(&prompt, decided, options.clone(), Some(1))
        .unwrap();
    assert_eq!(branch.finished(), None);
    let rest = run_to_end(&mut branch, &params);
    assert_eq!(rest.len(), 3);
    assert_eq!(branch.reply(), [decided, rest.as_slice()].concat());
    assert!(branch.reply_text().starts_with(&decided_text));
    drop(branch);
    // The chosen token is <|endoftext|>: the reply is over, nothing more is drawn.
    let eos = session.eos_id();
    let mut ended = session
        .branch(&prompt, &[reply[0], eos], options, Some(1))
        .unwrap();
    assert_eq!(ended.finished().map(|r| r.as_str()), Some("eos"));
    assert!(matches!(ended.step(&params).unwrap(), Step::Done { .. }));
    assert_eq!(ended.reply(), [reply[0]]);
}
