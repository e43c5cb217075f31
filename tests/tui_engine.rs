//! The inference thread on the tiny fixture model: messages in, messages out.

mod common;

use std::sync::mpsc::Receiver;
use std::time::Duration;

use gpt2_tui::conversation::{ChatFormat, Role, Turn};
use gpt2_tui::generate::SamplingParams;
use gpt2_tui::inference::{Engine, Prompt, Reply, Request};
use gpt2_tui::session::{FinishReason, Stats};

fn engine() -> Engine {
    let engine = Engine::start(Box::new(|progress: &dyn Fn(String)| {
        progress("loading the fixture".into());
        Ok(common::load_session("tiny-gpt2"))
    }));
    assert!(matches!(next(&engine.replies), Reply::Progress(_)));
    assert!(matches!(next(&engine.replies), Reply::Loaded));
    let info = engine.info.get().expect("model info once loaded");
    assert_eq!(info.window, 64);
    engine
}

fn next(replies: &Receiver<Reply>) -> Reply {
    replies
        .recv_timeout(Duration::from_secs(60))
        .expect("the engine answers")
}

/// Everything up to the end of one generation: the tokens' texts, and how it finished.
fn until_finished(replies: &Receiver<Reply>) -> (Vec<Reply>, Option<FinishReason>, Stats) {
    let mut seen = Vec::new();
    loop {
        match next(replies) {
            Reply::Finished { reason, stats, .. } => return (seen, reason, stats),
            Reply::Error(e) => panic!("engine error: {e}"),
            other => seen.push(other),
        }
    }
}

fn params(max_tokens: usize) -> SamplingParams {
    SamplingParams {
        max_tokens,
        seed: Some(11),
        ..SamplingParams::default()
    }
}

fn complete(text: &str) -> Prompt {
    Prompt::Complete { text: text.into() }
}

#[test]
fn a_live_change_applies_from_the_next_token_of_a_running_reply() {
    let engine = engine();
    engine.send(Request::Generate {
        prompt: complete("The king"),
        params: params(1_000_000),
    });
    // Wait for the reply to be under way, then cut it short: max_tokens 1 from the next token.
    loop {
        if let Reply::Token { .. } = next(&engine.replies) {
            break;
        }
    }
    engine.send(Request::SetParams(params(1)));
    let (seen, reason, stats) = until_finished(&engine.replies);
    let applied = seen
        .iter()
        .find_map(|r| match r {
            Reply::ParamsApplied { from_token } => Some(*from_token),
            _ => None,
        })
        .expect("the engine says when the change took effect");
    assert_eq!(reason, Some(FinishReason::MaxTokens));
    assert_eq!(
        stats.generated_tokens,
        applied - 1,
        "no token was drawn after the change arrived"
    );
}

#[test]
fn cancel_stops_and_the_same_seed_gives_the_same_reply() {
    let engine = engine();
    let mut texts = Vec::new();
    for _ in 0..2 {
        engine.send(Request::Generate {
            prompt: complete("Once upon a time"),
            params: params(12),
        });
        let (seen, reason, stats) = until_finished(&engine.replies);
        assert_eq!(reason, Some(FinishReason::MaxTokens));
        assert_eq!(stats.generated_tokens, 12);
        let text: String = seen
            .iter()
            .filter_map(|r| match r {
                Reply::Token { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        texts.push(text);
    }
    assert_eq!(texts[0], texts[1], "regenerating with a fixed seed repeats");

    engine.send(Request::Generate {
        prompt: complete("Once upon a time"),
        params: params(1_000_000),
    });
    loop {
        if let Reply::Token { .. } = next(&engine.replies) {
            break;
        }
    }
    engine.send(Request::Cancel);
    let (_, reason, _) = until_finished(&engine.replies);
    assert_eq!(reason, None, "a cancelled reply has no finish reason");
}

#[test]
fn a_chat_turn_prefills_only_what_is_new() {
    for format in [ChatFormat::Dialogpt, ChatFormat::Transcript] {
        chat_turn_prefills_only_what_is_new(format);
    }
}

fn chat_turn_prefills_only_what_is_new(format: ChatFormat) {
    let engine = engine();
    let mut turns = vec![Turn {
        role: Role::User,
        text: "Hello there".into(),
    }];
    let chat = |turns: &Vec<Turn>| Prompt::Chat {
        format,
        system: String::new(),
        turns: turns.clone(),
    };
    engine.send(Request::Generate {
        prompt: chat(&turns),
        params: params(6),
    });
    let (seen, reason, first) = until_finished(&engine.replies);
    assert_eq!(reason, Some(FinishReason::MaxTokens), "{format:?}");
    let reply: String = seen
        .iter()
        .filter_map(|r| match r {
            Reply::Token { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(first.prefill_tokens, first.prompt_tokens);
    turns.push(Turn {
        role: Role::Model,
        text: reply,
    });
    turns.push(Turn {
        role: Role::User,
        text: "And then?".into(),
    });
    engine.send(Request::Generate {
        prompt: chat(&turns),
        params: params(6),
    });
    let (_, _, second) = until_finished(&engine.replies);
    // The cache holds the first message and the reply but its last token (drawn, never run).
    assert_eq!(
        second.prefill_tokens,
        second.prompt_tokens - first.prompt_tokens - 6 + 1,
        "{format:?}: only the new turn (and the reply's last token) is prefilled: {second:?}"
    );
}

#[test]
fn a_long_text_keeps_its_end_and_room_for_the_continuation() {
    let engine = engine();
    let text = "word ".repeat(200);
    engine.send(Request::Generate {
        prompt: complete(&text),
        params: params(16),
    });
    let (seen, _, stats) = until_finished(&engine.replies);
    let Some(Reply::Started {
        prompt_tokens,
        dropped_tokens,
        ..
    }) = seen.first()
    else {
        panic!("first comes Started: {seen:?}")
    };
    assert_eq!(*prompt_tokens, 64 - 16);
    assert_eq!(prompt_tokens + dropped_tokens, 201, "200 words and a space");
    assert_eq!(stats.prompt_truncated, 0);
    assert_eq!(stats.context_shifts, 0, "the reply fitted after the prompt");
    // The last token's context count is the whole window in use.
    let last_context = seen
        .iter()
        .rev()
        .find_map(|r| match r {
            Reply::Token { context, .. } => Some(*context),
            _ => None,
        })
        .unwrap();
    assert_eq!(last_context, 64);
}

#[test]
fn filling_the_window_is_reported_while_writing() {
    let engine = engine();
    engine.send(Request::Generate {
        prompt: complete("Hello"),
        params: SamplingParams {
            max_tokens: 150,
            ..params(0)
        },
    });
    let (seen, _, stats) = until_finished(&engine.replies);
    assert!(stats.context_shifts >= 2, "{stats:?}");
    assert!(seen
        .iter()
        .any(|r| matches!(r, Reply::ContextShifted(n) if *n == stats.context_shifts)));
}

#[test]
fn load_failures_and_engine_panics_become_error_messages() {
    let failing = Engine::start(Box::new(|_: &dyn Fn(String)| {
        Err(gpt2_tui::Error::Other("no such model".into()))
    }));
    match next(&failing.replies) {
        Reply::Error(e) => assert!(e.contains("no such model"), "{e}"),
        other => panic!("expected an error, got {other:?}"),
    }
    let panicking = Engine::start(Box::new(|_: &dyn Fn(String)| panic!("weights on fire")));
    match next(&panicking.replies) {
        Reply::Error(e) => assert!(e.contains("weights on fire"), "{e}"),
        other => panic!("expected an error, got {other:?}"),
    }
    // The thread is gone: sending says so instead of hanging.
    std::thread::sleep(Duration::from_millis(50));
    assert!(!panicking.send(Request::Cancel));
}
