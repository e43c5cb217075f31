//! The inference thread on the tiny fixture model: messages in, messages out.

mod common;

use common::greedy;
use std::sync::mpsc::Receiver;
use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use gpt2_tui::engine::chat::{chat_prompt, ChatFormat, ReplyTokens, Role, Turn};
use gpt2_tui::engine::{Engine, Prompt, Reply, Request};
use gpt2_tui::generate::session::{FinishReason, GenerateOptions, Stats, Step};
use gpt2_tui::generate::SamplingParams;
use gpt2_tui::tui::state::{Action, App, Mode, ModelSummary};
use gpt2_tui::tui::theme::load_themes;

fn engine() -> Engine {
    let engine = Engine::start(Box::new(|progress: &dyn Fn(String)| {
        progress("loading the fixture".into());
        Ok((common::load_session("tiny-gpt2"), Vec::new()))
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

/// Each token's id and trace, up to the end of the generation.
fn traces(replies: &Receiver<Reply>) -> Vec<(u32, Option<gpt2_tui::generate::trace::Trace>)> {
    let (seen, _, _) = until_finished(replies);
    seen.into_iter()
        .filter_map(|r| match r {
            Reply::Token { id, trace, .. } => Some((id, trace)),
            _ => None,
        })
        .collect()
}

#[test]
fn the_trace_is_recorded_only_while_asked_for_and_names_the_drawn_token() {
    let engine = engine();
    let sampled = SamplingParams {
        temperature: 0.9,
        top_k: 20,
        ..params(6)
    };
    let generate = |params: SamplingParams| {
        engine.send(Request::Generate {
            prompt: complete("The king"),
            params,
        });
    };
    generate(sampled.clone());
    let off = traces(&engine.replies);
    assert_eq!(off.len(), 6);
    assert!(off.iter().all(|(_, t)| t.is_none()), "off: no trace");
    engine.send(Request::RecordTrace(true));
    generate(sampled.clone());
    let on = traces(&engine.replies);
    assert_eq!(
        on.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        off.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        "recording changes no draw"
    );
    for (id, trace) in &on {
        let trace = trace.as_ref().expect("on: every token has its trace");
        assert_eq!(trace.drawn, *id);
        let row = trace
            .rows
            .iter()
            .find(|r| r.id == *id)
            .expect("the drawn row");
        assert!(row.removed_by.is_none() && row.final_prob > 0.0);
        assert!(trace.rows.len() >= gpt2_tui::engine::ALTERNATIVES);
        assert!(trace.survivors <= 20, "top-k 20");
    }
    // Turned off while writing: the tokens after it have none.
    generate(params(1_000_000));
    loop {
        if let Reply::Token { trace, .. } = next(&engine.replies) {
            assert!(trace.is_some());
            break;
        }
    }
    engine.send(Request::RecordTrace(false));
    // Tokens already drawn may still carry one; from the first without, none does.
    loop {
        match next(&engine.replies) {
            Reply::Token { trace: None, .. } => break,
            Reply::Token { .. } => {}
            Reply::Finished { .. } => panic!("the reply ended before the change reached it"),
            _ => {}
        }
    }
    engine.send(Request::Cancel);
    let rest = traces(&engine.replies);
    assert!(rest.iter().all(|(_, t)| t.is_none()), "off from then on");
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

#[test]
fn attention_answers_match_the_model_and_wait_for_a_running_reply() {
    let engine = engine();
    engine.send(Request::Generate {
        prompt: complete("The king"),
        params: greedy(8),
    });
    let (seen, _, _) = until_finished(&engine.replies);
    let ids = token_ids(&seen);
    // Asked while a reply is being written: answered once it is done, in order.
    engine.send(Request::Generate {
        prompt: complete("The queen"),
        params: greedy(20),
    });
    for (serial, upto) in [(7, 3), (8, 8)] {
        engine.send(Request::Attention {
            serial,
            prompt: complete("The king"),
            reply: ids[..upto].to_vec(),
        });
    }
    let (_, reason, _) = until_finished(&engine.replies);
    assert_eq!(
        reason,
        Some(FinishReason::MaxTokens),
        "the reply was not cut short"
    );
    let session = common::load_session("tiny-gpt2");
    for (serial, upto) in [(7u64, 3usize), (8, 8)] {
        let Reply::Attention { serial: got, map } = next(&engine.replies) else {
            panic!("expected the attention answer")
        };
        assert_eq!(got, serial);
        let map = map.unwrap();
        let mut all = session.tokenizer().encode("The king").unwrap();
        all.extend(&ids[..upto]);
        assert_eq!(map.tokens.len(), all.len());
        assert_eq!(map.tokens.concat(), session.tokenizer().decode(&all));
        // The last row of every layer's and head's map, as the model computes it.
        let maps = session.model().attention_maps(&all).unwrap();
        assert_eq!(map.weights.len(), maps.len());
        for (layer, want) in maps.iter().enumerate() {
            let want = want.to_vec3::<f32>().unwrap();
            for (head, rows) in want.iter().enumerate() {
                let got = &map.weights[layer][head];
                let row = &rows[all.len() - 1];
                for (g, w) in got.iter().zip(row) {
                    assert!(
                        (g - w).abs() < 1e-5,
                        "layer {layer} head {head}: {g} vs {w}"
                    );
                }
                assert!((got.iter().sum::<f32>() - 1.0).abs() < 1e-4);
            }
        }
    }
    // Bad input is an answer, not a crash.
    engine.send(Request::Attention {
        serial: 9,
        prompt: complete(""),
        reply: vec![],
    });
    assert!(matches!(
        next(&engine.replies),
        Reply::Attention {
            serial: 9,
            map: Err(_)
        }
    ));
}

fn token_ids(seen: &[Reply]) -> Vec<u32> {
    seen.iter()
        .filter_map(|r| match r {
            Reply::Token { id, .. } => Some(*id),
            _ => None,
        })
        .collect()
}

/// Feeds the engine's replies to the interface until the reply is done.
fn until_idle(app: &mut App, engine: &Engine) {
    loop {
        let reply = next(&engine.replies);
        if let Reply::Error(e) = &reply {
            panic!("engine error: {e}");
        }
        app.update(Action::Reply(reply));
        if !app.is_generating() {
            return;
        }
    }
}

fn key(app: &mut App, code: KeyCode) -> Vec<Request> {
    app.update(Action::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

fn submit(app: &mut App, engine: &Engine, text: &str) {
    for c in text.chars() {
        key(app, KeyCode::Char(c));
    }
    for request in key(app, KeyCode::Enter) {
        engine.send(request);
    }
}

/// In the interface on the real engine: choose the second most likely token at step `k` of a
/// greedy reply; the branch reuses the cache and goes on as greedy decoding from that prefix.
fn branch_equals_greedy_from_the_forced_prefix(mode: &str) {
    let engine = engine();
    let info = engine.info.get().unwrap();
    let (themes, _) = load_themes(None);
    let mut app = App::new(
        greedy(12),
        Mode::Chat,
        ChatFormat::Transcript,
        String::new(),
        themes,
        "dark",
    );
    app.engine.tokenizer = Some(info.tokenizer.clone());
    app.update(Action::Loaded(ModelSummary::from(info)));
    submit(&mut app, &engine, &format!("/mode {mode}"));
    submit(&mut app, &engine, "Hello there");
    until_idle(&mut app, &engine);
    let key_of_reply = if mode == "chat" { 1 } else { usize::MAX };
    let first = app.conversation.replies[&key_of_reply].current().clone();
    let shown_before = (
        app.conversation.turns.clone(),
        app.conversation.document.clone(),
    );
    assert_eq!(first.pieces.len(), 12, "{mode}: a full greedy reply");
    let k = 4;
    key(&mut app, KeyCode::F(6));
    key(&mut app, KeyCode::Home);
    for _ in 0..k {
        key(&mut app, KeyCode::Right);
    }
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Down);
    let requests = key(&mut app, KeyCode::Enter);
    let [Request::Branch { prompt, reply, .. }] = requests.as_slice() else {
        panic!("{mode}: expected a branch request, got {requests:?}")
    };
    let second_best = first.pieces[k].top[1].id;
    let mut want_reply: Vec<u32> = first.pieces[..k].iter().map(|p| p.id).collect();
    want_reply.push(second_best);
    assert_eq!(reply, &want_reply);
    let prompt = prompt.clone();
    for request in requests {
        engine.send(request);
    }
    until_idle(&mut app, &engine);
    let (prefilled, _) = app.stats.prefill.unwrap();
    assert_eq!(
        prefilled, 1,
        "{mode}: only the chosen token is new to the cache"
    );
    let branch: Vec<u32> = app.conversation.replies[&key_of_reply]
        .pieces()
        .iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(branch[..=k], want_reply[..]);
    assert_eq!(
        branch.len(),
        12,
        "{mode}: max_tokens counts the whole reply"
    );

    // Greedy decoding from the forced prefix, in a fresh session.
    let mut session = common::load_session("tiny-gpt2");
    let mut forced = match &prompt {
        Prompt::Complete { text } => session.tokenizer().encode(text).unwrap(),
        Prompt::Chat { turns, format, .. } => {
            let eos = session.eos_id();
            chat_prompt(
                session.tokenizer(),
                eos,
                *format,
                "",
                turns,
                &ReplyTokens::default(),
                64,
                12,
            )
            .unwrap()
            .tokens
        }
    };
    forced.extend(&want_reply);
    let mut generation = session
        .generate(
            &forced,
            GenerateOptions {
                ignore_eos: true,
                ..GenerateOptions::default()
            },
            None,
        )
        .unwrap();
    let mut fresh = want_reply.clone();
    while let Step::Token(t) = generation.step(&greedy(12 - want_reply.len())).unwrap() {
        fresh.push(t.id);
    }
    assert_eq!(branch, fresh, "{mode}");

    // The first branch comes back exactly.
    key(&mut app, KeyCode::Char('b'));
    assert_eq!(
        (
            app.conversation.turns.clone(),
            app.conversation.document.clone()
        ),
        shown_before
    );
    assert_eq!(app.conversation.replies[&key_of_reply].current(), &first);
}

#[test]
fn branching_in_chat_mode_equals_greedy_from_the_forced_prefix() {
    branch_equals_greedy_from_the_forced_prefix("chat");
}

#[test]
fn branching_in_completion_mode_equals_greedy_from_the_forced_prefix() {
    branch_equals_greedy_from_the_forced_prefix("complete");
}
