//! Editing an earlier turn in the interface, on the real engine (tiny fixture model): the chat
//! is written again from the edited turn, the old continuation stays as a version of it, and
//! only the tokens after the change are run through the model.

mod common;

use std::sync::mpsc::Receiver;
use std::time::Duration;

use common::greedy;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use gpt2_tui::engine::chat::{chat_prompt, ChatFormat, ReplyTokens, Role, Turn};
use gpt2_tui::engine::{Engine, Reply, Request};
use gpt2_tui::tui::state::{Action, App, Mode, ModelSummary};
use gpt2_tui::tui::theme::load_themes;

const SYSTEM: &str = "A friendly chat between two old friends about the weather.";

fn next(replies: &Receiver<Reply>) -> Reply {
    replies
        .recv_timeout(Duration::from_secs(60))
        .expect("the engine answers")
}

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

fn press(app: &mut App, code: KeyCode, modifiers: KeyModifiers) -> Vec<Request> {
    app.update(Action::Key(KeyEvent::new(code, modifiers)))
}

fn key(app: &mut App, code: KeyCode) -> Vec<Request> {
    press(app, code, KeyModifiers::NONE)
}

fn send(engine: &Engine, requests: Vec<Request>) {
    for request in requests {
        engine.send(request);
    }
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        key(app, KeyCode::Char(c));
    }
}

/// An app on the engine with three exchanges of four greedy tokens each.
fn three_turns() -> (Engine, App) {
    let engine = Engine::start(Box::new(|_: &dyn Fn(String)| {
        Ok((common::load_session("tiny-gpt2"), Vec::new()))
    }));
    loop {
        if let Reply::Loaded = next(&engine.replies) {
            break;
        }
    }
    let info = engine.info.get().unwrap();
    let (themes, _) = load_themes(None);
    let mut app = App::new(
        greedy(4),
        Mode::Chat,
        ChatFormat::Dialogpt,
        SYSTEM.into(),
        themes,
        "dark",
    );
    app.engine.tokenizer = Some(info.tokenizer.clone());
    app.update(Action::Loaded(ModelSummary::from(info)));
    for message in ["Hello there, old friend", "How is the weather", "Bye now"] {
        type_text(&mut app, message);
        send(&engine, key(&mut app, KeyCode::Enter));
        until_idle(&mut app, &engine);
    }
    assert_eq!(app.conversation.turns.len(), 6);
    (engine, app)
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

fn prompt_of(app: &App, turns: &[Turn]) -> Vec<u32> {
    let tokenizer = app.engine.tokenizer.as_ref().unwrap();
    let eos = tokenizer.eos_id().unwrap();
    chat_prompt(
        tokenizer,
        eos,
        ChatFormat::Dialogpt,
        SYSTEM,
        turns,
        &ReplyTokens::default(),
        64,
        4,
    )
    .unwrap()
    .tokens
}

#[test]
fn editing_the_first_of_three_turns_regenerates_from_it_and_keeps_the_old_chat() {
    let (engine, mut app) = three_turns();
    let before = app.conversation.turns.clone();
    // Alt+↑ puts the message cursor on the last turn; up five times to the first.
    press(&mut app, KeyCode::Up, KeyModifiers::ALT);
    for _ in 0..5 {
        key(&mut app, KeyCode::Up);
    }
    assert_eq!(app.messages.selected, Some(0));
    key(&mut app, KeyCode::Char('e'));
    assert_eq!(app.input.text, "Hello there, old friend");
    assert_eq!(app.messages.editing, Some(0));
    // Replace the last word.
    for _ in 0.."friend".len() {
        key(&mut app, KeyCode::Backspace);
    }
    type_text(&mut app, "pal");
    let requests = key(&mut app, KeyCode::Enter);
    assert!(
        matches!(requests.as_slice(), [Request::Generate { .. }]),
        "{requests:?}"
    );
    send(&engine, requests);
    until_idle(&mut app, &engine);

    let turns = &app.conversation.turns;
    assert_eq!(turns.len(), 2, "written again from the edited turn");
    assert_eq!(turns[0].text, "Hello there, old pal");
    assert_eq!(turns[1].role, Role::Model);
    // Only what follows the change went through the model: the cache held the system text
    // and the start of the first message.
    let (prefilled, prompt_tokens) = app.stats.prefill.unwrap();
    let new_prompt = prompt_of(&app, &turns[..1]);
    let old_prompt = prompt_of(&app, &before[..1]);
    let shared = common_prefix(&old_prompt, &new_prompt);
    assert_eq!(prompt_tokens, new_prompt.len());
    assert!(
        shared > 10,
        "the system text and 'Hello there, old' are shared"
    );
    assert_eq!(prefilled, new_prompt.len() - shared);

    // The old continuation is a version of the first turn: b shows it again, whole.
    assert_eq!(app.conversation.version_of(0), Some((2, 2)));
    press(&mut app, KeyCode::Up, KeyModifiers::ALT);
    key(&mut app, KeyCode::Up);
    assert_eq!(app.messages.selected, Some(0));
    key(&mut app, KeyCode::Char('b'));
    assert_eq!(app.conversation.turns, before);
    assert_eq!(
        app.conversation.replies.len(),
        3,
        "with the replies' tokens"
    );
    let edited = {
        key(&mut app, KeyCode::Char('B'));
        app.conversation.turns.clone()
    };
    assert_eq!(edited[0].text, "Hello there, old pal");

    // The versions are saved with the session and come back.
    let saved = app.to_session();
    assert_eq!(saved.version, 2, "a session with versions is format 2");
    let json = serde_json::to_string(&saved).unwrap();
    let mut resumed = three_turns().1;
    resumed.restore_session(serde_json::from_str(&json).unwrap());
    assert_eq!(resumed.conversation.turns, edited);
    assert_eq!(resumed.conversation.version_of(0), Some((2, 2)));
    press(&mut resumed, KeyCode::Up, KeyModifiers::ALT);
    key(&mut resumed, KeyCode::Up);
    key(&mut resumed, KeyCode::Char('b'));
    assert_eq!(resumed.conversation.turns, before);
}

#[test]
fn an_edited_reply_is_continued_from_the_edited_text() {
    let (engine, mut app) = three_turns();
    let before = app.conversation.turns.clone();
    press(&mut app, KeyCode::Up, KeyModifiers::ALT);
    for _ in 0..4 {
        key(&mut app, KeyCode::Up);
    }
    assert_eq!(app.messages.selected, Some(1));
    key(&mut app, KeyCode::Enter);
    while !app.input.text.is_empty() {
        key(&mut app, KeyCode::Backspace);
    }
    type_text(&mut app, "It rains all day");
    let requests = key(&mut app, KeyCode::Enter);
    let [Request::Branch { reply, params, .. }] = requests.as_slice() else {
        panic!("a reply continued from the edited text: {requests:?}")
    };
    let tokenizer = app.engine.tokenizer.clone().unwrap();
    let ids = tokenizer.encode("It rains all day").unwrap();
    assert_eq!(reply, &ids);
    assert_eq!(
        params.max_tokens,
        4 + ids.len(),
        "the edited text does not count"
    );
    send(&engine, requests);
    until_idle(&mut app, &engine);
    let turns = &app.conversation.turns;
    assert_eq!(turns.len(), 2);
    assert!(
        turns[1].text.starts_with("It rains all day"),
        "{:?}",
        turns[1]
    );
    assert!(
        turns[1].text.len() > "It rains all day".len(),
        "and the model wrote on"
    );
    let pieces = app.conversation.replies[&1].pieces();
    assert_eq!(pieces.len(), ids.len() + 4);
    // The prompt up to the reply was cached: only the edited reply's tokens were run.
    let (prefilled, _) = app.stats.prefill.unwrap();
    assert_eq!(prefilled, ids.len());
    assert_eq!(app.conversation.version_of(1), Some((2, 2)));
    assert_ne!(app.conversation.turns, before);
}

#[test]
fn esc_cancels_an_edit_and_the_turn_stays() {
    let (_engine, mut app) = three_turns();
    let before = app.conversation.turns.clone();
    press(&mut app, KeyCode::Up, KeyModifiers::ALT);
    key(&mut app, KeyCode::Char('e'));
    type_text(&mut app, " more");
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.messages.editing, None);
    assert!(app.input.text.is_empty());
    assert_eq!(app.conversation.turns, before);
    assert_eq!(app.conversation.version_of(5), None);
}
