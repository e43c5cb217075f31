//! The user's own text in the views: every prompt token scored from the prefill, against
//! transformers (tests/fixtures/score.json, from tools/make_score_fixtures.py), only while a
//! view asks, and sent by the engine thread per chat message or document.

mod common;

use std::time::Duration;

use common::{fixtures, load_session};
use gpt2_tui::engine::chat::{ChatFormat, Role, Turn};
use gpt2_tui::engine::{Engine, Prompt, Reply, Request};
use gpt2_tui::generate::perplexity::TokenScore;
use gpt2_tui::generate::session::GenerateOptions;
use gpt2_tui::generate::SamplingParams;
use serde_json::Value;

fn fixture() -> Value {
    let text = std::fs::read_to_string(fixtures().join("score.json")).expect("score.json");
    serde_json::from_str(&text).unwrap()
}

fn scoring() -> GenerateOptions {
    GenerateOptions {
        score_prompt: true,
        ..GenerateOptions::default()
    }
}

/// Within 1e-4, relative where the value is above 1 (as tests/score.rs holds `score`).
fn close(got: f32, want: &Value, what: &str) {
    let want = want.as_f64().unwrap();
    assert!(
        (got as f64 - want).abs() < 1e-4 * want.abs().max(1.0),
        "{what}: {got} against transformers' {want}"
    );
}

/// Scores `scores[1..]` against the fixture's rows for the same positions (the first window of
/// the fixture starts at token 0, so its rows below the window have the whole prefix).
fn check_against_fixture(scores: &[Option<TokenScore>], want: &Value) {
    assert!(scores[0].is_none(), "the first token has no prediction");
    for (i, score) in scores.iter().enumerate().skip(1) {
        let score = score
            .as_ref()
            .unwrap_or_else(|| panic!("token {i} is scored"));
        let row = &want["tokens"][i];
        close(score.logprob, &row["logprob"], &format!("logprob of {i}"));
        close(score.entropy, &row["entropy"], &format!("entropy of {i}"));
        let (rank, ties) = (row["rank"].as_i64().unwrap(), row["ties"].as_i64().unwrap());
        assert!((score.rank as i64 - rank).abs() <= ties, "rank of {i}");
        let want_top = row["top"].as_array().unwrap();
        assert_eq!(score.top.len(), 10, "the views show ten alternatives");
        for ((id, logprob), w) in score.top.iter().zip(want_top) {
            assert_eq!(*id as u64, w[0].as_u64().unwrap(), "alternatives of {i}");
            close(*logprob, &w[1], &format!("alternative of {i}"));
        }
    }
}

#[test]
fn prompt_tokens_scored_from_the_prefill_match_transformers_and_reuse_the_prefix() {
    let want = fixture();
    let ids = common::ids(&want["ids"]);
    let mut session = load_session("tiny-gpt2");
    let generation = session.generate(&ids[..40], scoring(), Some(1)).unwrap();
    assert_eq!(
        generation.stats().prefill_tokens,
        40,
        "one pass over the prompt"
    );
    let first = generation.prompt_scores();
    assert_eq!(first.len(), 40);
    check_against_fixture(&first, &want);
    drop(generation);
    // The next prompt extends it: only the new tokens run, and the row before the first of
    // them (it predicts that token); the earlier scores are kept.
    let generation = session.generate(&ids[..60], scoring(), Some(1)).unwrap();
    assert_eq!(generation.stats().prefill_tokens, 21);
    let second = generation.prompt_scores();
    assert_eq!(second.len(), 60);
    assert_eq!(second[..40], first[..], "kept, not recomputed");
    check_against_fixture(&second, &want);
}

#[test]
fn with_the_views_off_the_prefill_scores_nothing() {
    let ids = common::ids(&fixture()["ids"]);
    let mut session = load_session("tiny-gpt2");
    let generation = session
        .generate(&ids[..30], GenerateOptions::default(), Some(1))
        .unwrap();
    assert!(generation.prompt_scores().is_empty());
    drop(generation);
    assert!(
        session.prompt_scores(30).iter().all(Option::is_none),
        "no score was computed"
    );
    // Turned on later: the unscored prefix is run again (once), then scored.
    let generation = session.generate(&ids[..30], scoring(), Some(1)).unwrap();
    assert_eq!(generation.stats().prefill_tokens, 30);
    check_against_fixture(&generation.prompt_scores(), &fixture());
}

fn engine() -> Engine {
    let engine = Engine::start(Box::new(|_: &dyn Fn(String)| {
        Ok((common::load_session("tiny-gpt2"), Vec::new()))
    }));
    while !matches!(next(&engine), Reply::Loaded) {}
    engine
}

fn next(engine: &Engine) -> Reply {
    engine
        .replies
        .recv_timeout(Duration::from_secs(60))
        .expect("the engine answers")
}

/// The replies of one generation, up to its end.
fn replies_of(engine: &Engine, prompt: Prompt) -> Vec<Reply> {
    let params = SamplingParams {
        max_tokens: 2,
        ..SamplingParams::greedy()
    };
    engine.send(Request::Generate { prompt, params });
    let mut seen = Vec::new();
    loop {
        match next(engine) {
            Reply::Finished { .. } => return seen,
            Reply::Error(e) => panic!("engine error: {e}"),
            other => seen.push(other),
        }
    }
}

#[test]
fn the_engine_sends_the_scores_of_each_user_text_only_while_a_view_asks() {
    let engine = engine();
    let chat = |text: &str| Prompt::Chat {
        format: ChatFormat::Transcript,
        system: String::new(),
        turns: vec![Turn {
            role: Role::User,
            text: text.into(),
        }],
    };
    let scored = |replies: &[Reply]| {
        replies
            .iter()
            .filter_map(|r| match r {
                Reply::PromptScored(parts) => Some(parts.clone()),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    let off = replies_of(&engine, chat("The café was closed"));
    assert!(scored(&off).is_empty(), "views off: nothing is sent");
    engine.send(Request::RecordTrace(true));
    let on = scored(&replies_of(&engine, chat("  The café was closed ")));
    let [parts] = on.as_slice() else {
        panic!("one PromptScored per prompt: {on:?}")
    };
    let [part] = parts.as_slice() else {
        panic!("one user message: {parts:?}")
    };
    assert_eq!(part.turn, Some(0));
    assert_eq!(part.text, "The café was closed");
    let text: String = part.tokens.iter().map(|t| t.text.as_str()).collect();
    assert_eq!(text, part.text, "the pieces rebuild the message");
    // After the preamble, every token of the message was predicted by the ones before it.
    for token in &part.tokens {
        let score = token.score.as_ref().expect("scored");
        assert!(score.prob > 0.0 && score.prob <= 1.0 && score.rank >= 1);
        assert_eq!(score.top.len(), 10);
        assert!(score.top.windows(2).all(|w| w[0].prob >= w[1].prob));
    }
    // Completion mode: the document, whose first token has no prediction.
    let doc = scored(&replies_of(
        &engine,
        Prompt::Complete {
            text: "Once upon a time".into(),
        },
    ));
    let tokens = &doc[0][0].tokens;
    assert_eq!(doc[0][0].turn, None);
    assert!(tokens[0].score.is_none());
    assert!(tokens[1..].iter().all(|t| t.score.is_some()));
}
