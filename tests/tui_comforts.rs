//! The interface's comforts, on the state without a terminal: the message cursor and turn
//! versions on screen, copying (OSC 52), `/read`, the editor, the Ctrl+R history search.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use gpt2_tui::engine::chat::{ChatFormat, Role, Turn};
use gpt2_tui::engine::{Reply, Request};
use gpt2_tui::generate::session::{FinishReason, Stats};
use gpt2_tui::generate::SamplingParams;
use gpt2_tui::sessions::{Session, Store};
use gpt2_tui::tui::clipboard::{base64, osc52};
use gpt2_tui::tui::state::{Action, App, Effect, Mode, ModelSummary};
use gpt2_tui::tui::theme::load_themes;
use gpt2_tui::tui::view::{self, Screen};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

fn app() -> App {
    let (themes, _) = load_themes(None);
    let mut app = App::new(
        SamplingParams::default(),
        Mode::Chat,
        ChatFormat::Dialogpt,
        String::new(),
        themes,
        "dark",
    );
    app.update(Action::Loaded(ModelSummary {
        name: "bundled".into(),
        parameters: 5_300_000,
        device: "cpu".into(),
        dtype: "f32".into(),
        window: 256,
        load_notes: vec![],
    }));
    app
}

fn press(app: &mut App, code: KeyCode, modifiers: KeyModifiers) -> Vec<Request> {
    app.update(Action::Key(KeyEvent::new(code, modifiers)))
}

fn key(app: &mut App, code: KeyCode) -> Vec<Request> {
    press(app, code, KeyModifiers::NONE)
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        key(app, KeyCode::Char(c));
    }
}

/// A user message and a finished reply streamed in one piece.
fn exchange(app: &mut App, message: &str, reply: &str) {
    type_text(app, message);
    key(app, KeyCode::Enter);
    app.update(Action::Reply(Reply::Started {
        prompt_tokens: 10,
        dropped_turns: 0,
        dropped_tokens: 0,
    }));
    app.update(Action::Reply(Reply::Token {
        id: 1,
        text: reply.into(),
        logprob: -0.5,
        context: 11,
        top: vec![],
        params: SamplingParams::default(),
        trace: None,
    }));
    app.update(Action::Reply(Reply::Finished {
        reason: Some(FinishReason::Eos),
        text: String::new(),
        stats: Stats::default(),
    }));
}

fn chat() -> App {
    let mut app = app();
    exchange(
        &mut app,
        "What light through yonder window breaks?",
        "It is the east.",
    );
    exchange(&mut app, "And Juliet?", "She is the sun.");
    app
}

fn render(app: &mut App, width: u16, height: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    let mut screen = Screen::default();
    terminal.draw(|f| view::draw(f, app, &mut screen)).unwrap();
    app.update(Action::Drawn(screen.layout()));
    terminal
}

fn copied(app: &mut App) -> Vec<String> {
    std::mem::take(&mut app.effects)
        .into_iter()
        .filter_map(|e| match e {
            Effect::Copy(text) => Some(text),
            _ => None,
        })
        .collect()
}

#[test]
fn snapshot_message_cursor_and_a_second_version_of_a_turn() {
    let mut app = chat();
    press(&mut app, KeyCode::Up, KeyModifiers::ALT);
    key(&mut app, KeyCode::Up);
    key(&mut app, KeyCode::Up);
    assert_eq!(app.messages.selected, Some(1));
    key(&mut app, KeyCode::Char('e'));
    assert_eq!(app.input.text, "It is the east.");
    // Without a tokenizer the edited reply cannot be continued: the model writes it afresh.
    while !app.input.text.is_empty() {
        key(&mut app, KeyCode::Backspace);
    }
    let requests = key(&mut app, KeyCode::Enter);
    assert!(
        matches!(requests.as_slice(), [Request::Generate { .. }]),
        "{requests:?}"
    );
    app.update(Action::Reply(Reply::Finished {
        reason: Some(FinishReason::Eos),
        text: "It is the moon.".into(),
        stats: Stats::default(),
    }));
    assert_eq!(app.conversation.turns.len(), 2);
    press(&mut app, KeyCode::Up, KeyModifiers::ALT);
    insta::assert_snapshot!(render(&mut app, 70, 14).backend());
    key(&mut app, KeyCode::Char('b'));
    assert_eq!(app.conversation.turns.len(), 4, "the old version, whole");
    assert_eq!(app.conversation.turns[3].text, "She is the sun.");
    assert_eq!(
        app.message.as_deref(),
        Some("version 1 of 2 from this turn")
    );
}

#[test]
fn copy_sends_the_base64_of_the_reply_or_the_whole_chat() {
    let mut app = chat();
    type_text(&mut app, "/copy");
    key(&mut app, KeyCode::Enter);
    let texts = copied(&mut app);
    assert_eq!(texts, ["She is the sun."], "the last reply");
    assert_eq!(
        osc52(&texts[0]),
        format!("\x1b]52;c;{}\x07", "U2hlIGlzIHRoZSBzdW4u")
    );
    // `y` in the message cursor: the message under it.
    press(&mut app, KeyCode::Up, KeyModifiers::ALT);
    key(&mut app, KeyCode::Up);
    key(&mut app, KeyCode::Char('y'));
    assert_eq!(copied(&mut app), ["And Juliet?"]);
    key(&mut app, KeyCode::Esc);
    // `y` in the token cursor: its reply.
    key(&mut app, KeyCode::F(6));
    key(&mut app, KeyCode::Char('y'));
    assert_eq!(copied(&mut app), ["She is the sun."]);
    key(&mut app, KeyCode::Esc);
    type_text(&mut app, "/copy all");
    key(&mut app, KeyCode::Enter);
    let all = copied(&mut app);
    let want = "# Conversation with bundled\n\n**You**: What light through yonder window breaks?\n\n\
                **GPT-2**: It is the east.\n\n**You**: And Juliet?\n\n**GPT-2**: She is the sun.\n\n";
    assert_eq!(all, [want]);
    assert_eq!(base64(want.as_bytes()).len(), want.len().div_ceil(3) * 4);
    assert!(app
        .message
        .as_deref()
        .unwrap()
        .contains("copied the conversation"));
    type_text(&mut app, "/copy some");
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.message.as_deref(), Some("usage: /copy, /copy all"));
}

#[test]
fn read_inserts_a_file_and_names_it_when_it_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("notes.txt");
    std::fs::write(&good, "a note\nof two lines").unwrap();
    let mut app = app();
    type_text(&mut app, &format!("/read {}", good.display()));
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.input.text, "a note\nof two lines");
    app.input.take();
    let missing = dir.path().join("missing.txt");
    let binary = dir.path().join("binary.bin");
    std::fs::write(&binary, [0x61, 0xff, 0xfe]).unwrap();
    let large = dir.path().join("large.txt");
    std::fs::write(
        &large,
        vec![b'a'; gpt2_tui::tui::state::READ_LIMIT as usize + 1],
    )
    .unwrap();
    for (path, why) in [
        (&missing, "cannot read"),
        (&binary, "is not UTF-8 text"),
        (&large, "is too large"),
    ] {
        type_text(&mut app, &format!("/read {}", path.display()));
        key(&mut app, KeyCode::Enter);
        let message = app.message.clone().unwrap();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains(why), "{message}");
        assert!(app.input.text.is_empty(), "nothing inserted");
    }
}

#[test]
fn the_editor_gets_the_input_and_its_answer_replaces_it_or_says_why_not() {
    let mut app = app();
    type_text(&mut app, "a draft");
    press(&mut app, KeyCode::Char('g'), KeyModifiers::CONTROL);
    assert_eq!(app.effects, [Effect::Edit("a draft".into())]);
    app.effects.clear();
    app.update(Action::Edited(Ok("the final text".into())));
    assert_eq!(app.input.text, "the final text");
    app.input.set(String::new());
    type_text(&mut app, "/edit");
    // The command line itself is not what is edited: the input was emptied for the command.
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.effects, [Effect::Edit(String::new())]);
    app.input.set("kept".into());
    app.update(Action::Edited(Err("the editor \"vi\" failed".into())));
    assert_eq!(app.input.text, "kept");
    assert_eq!(app.message.as_deref(), Some("the editor \"vi\" failed"));
}

#[test]
fn ctrl_r_finds_earlier_inputs_and_alt_r_regenerates() {
    let mut app = chat();
    type_text(&mut app, "draft");
    press(&mut app, KeyCode::Char('r'), KeyModifiers::CONTROL);
    type_text(&mut app, "light");
    assert_eq!(app.input.text, "What light through yonder window breaks?");
    assert!(app.message.as_deref().unwrap().starts_with("search: light"));
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.input.text, "draft");
    press(&mut app, KeyCode::Char('r'), KeyModifiers::CONTROL);
    press(&mut app, KeyCode::Char('r'), KeyModifiers::CONTROL);
    assert_eq!(
        app.input.text, "What light through yonder window breaks?",
        "older"
    );
    let requests = key(&mut app, KeyCode::Enter);
    assert!(
        requests.is_empty(),
        "Enter takes the match, it does not send it"
    );
    assert_eq!(app.input.text, "What light through yonder window breaks?");
    assert_eq!(app.message, None);
    app.input.take();
    let requests = press(&mut app, KeyCode::Char('r'), KeyModifiers::ALT);
    assert!(matches!(requests.as_slice(), [Request::Generate { .. }]));
    assert_eq!(app.conversation.turns.last().unwrap().role, Role::User);
}

/// A saved session with a fixed id and time, so the picker's rows are the same every run.
fn saved(store: &Store, id: &str, updated: u64, model: &str, messages: &[&str]) {
    let mut session = Session::new(
        model,
        Mode::Chat,
        ChatFormat::Dialogpt,
        SamplingParams::default(),
    );
    session.id = id.into();
    session.created = updated - 60;
    session.updated = updated;
    session.turns = messages
        .iter()
        .enumerate()
        .map(|(i, text)| Turn {
            role: if i % 2 == 0 { Role::User } else { Role::Model },
            text: text.to_string(),
        })
        .collect();
    session.title = session.shown_title();
    store.save(&session).unwrap();
}

#[test]
fn snapshot_sessions_picker_with_an_unreadable_file_and_a_delete_question() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    saved(
        &store,
        "20261201-101500-00aa01",
        1_796_120_100,
        "gpt2",
        &["Hello there", "Hi!"],
    );
    saved(
        &store,
        "20261202-083000-00bb02",
        1_796_200_200,
        "bundled",
        &["Shall I compare thee to a summer's day?"],
    );
    std::fs::write(
        dir.path().join("20261130-000000-badbad.json"),
        b"{\"version\": 1,",
    )
    .unwrap();
    let mut app = app();
    app.attach_sessions(Some(store.clone()), true, "bundled");
    type_text(&mut app, "/sessions");
    key(&mut app, KeyCode::Enter);
    let picker = app.overlay.sessions.as_ref().expect("the picker is open");
    assert_eq!(picker.list[0].id, "20261202-083000-00bb02", "newest first");
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Char('d'));
    insta::assert_snapshot!(render(&mut app, 100, 12).backend());
    key(&mut app, KeyCode::Char('y'));
    assert!(
        store.open("20261201-101500-00aa01").is_err(),
        "y deleted it"
    );
    assert_eq!(app.overlay.sessions.as_ref().unwrap().list.len(), 1);
    key(&mut app, KeyCode::Esc);
    assert!(app.overlay.sessions.is_none());
}
