use super::super::replies::{Branch, Branches, Piece};
use super::*;
use crate::engine::chat::Role;
use crate::engine::chat::{ChatFormat, Turn};
use crate::generate::SamplingParams;
use crate::tui::state::{EngineState, Mode};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

fn app(store: &Store) -> App {
    let (themes, _) = crate::tui::theme::load_themes(None);
    let mut app = App::new(
        SamplingParams::default(),
        Mode::Chat,
        ChatFormat::Dialogpt,
        String::new(),
        themes,
        "dark",
    );
    app.attach_sessions(Some(store.clone()), true, "tiny-gpt2");
    app
}

fn press(app: &mut App, code: KeyCode) {
    app.update(crate::tui::state::Action::Key(KeyEvent::new(
        code,
        KeyModifiers::NONE,
    )));
}

fn picker_id(app: &App) -> String {
    let picker = app.overlay.sessions.as_ref().unwrap();
    picker.list[picker.selected].id.clone()
}

fn say(app: &mut App, role: Role, text: &str) {
    app.conversation.turns.push(Turn {
        role,
        text: text.into(),
    });
}

#[test]
fn a_turn_is_written_at_once_and_a_reply_at_most_once_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let mut app = app(&store);
    app.autosave();
    assert!(
        store.list().unwrap().0.is_empty(),
        "an empty chat is not written"
    );
    say(&mut app, Role::User, "hello there");
    app.engine.state = EngineState::Generating;
    app.autosave();
    let saved = store.open(&app.sessions.id).unwrap();
    assert_eq!(saved.turns.len(), 1);
    assert_eq!(saved.title, "hello there");
    // The reply's first words: within the second, not yet.
    say(&mut app, Role::Model, "Good");
    app.autosave();
    assert_eq!(
        store.open(&app.sessions.id).unwrap().turns.len(),
        2,
        "a new turn at once"
    );
    app.conversation.turns[1].text.push_str(" my lord");
    app.autosave();
    assert_eq!(store.open(&app.sessions.id).unwrap().turns[1].text, "Good");
    std::thread::sleep(WRITE_EVERY);
    app.autosave();
    assert_eq!(
        store.open(&app.sessions.id).unwrap().turns[1].text,
        "Good my lord"
    );
    app.conversation.turns[1].text.push('!');
    app.engine.state = EngineState::Idle;
    app.autosave();
    assert_eq!(
        store.open(&app.sessions.id).unwrap().turns[1].text,
        "Good my lord!"
    );
}

#[test]
fn autosave_off_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let mut app = app(&store);
    app.sessions.enabled = false;
    say(&mut app, Role::User, "hello");
    app.autosave();
    app.save_session_now();
    assert!(store.list().unwrap().0.is_empty());
}

#[test]
fn a_session_comes_back_with_its_branches_and_settings() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let mut app = app(&store);
    say(&mut app, Role::User, "hello");
    say(&mut app, Role::Model, "Good lord");
    app.params.temperature = 0.25;
    app.conversation.system = "be brief".into();
    let pieces = |texts: &[&str]| Branch {
        pieces: texts
            .iter()
            .enumerate()
            .map(|(i, t)| Piece {
                id: i as u32,
                text: t.to_string(),
                prob: 0.5,
                top: vec![],
                params: app.params.clone(),
                trace: None,
            })
            .collect(),
        text: texts.concat(),
    };
    let branches = Branches::from_saved(
        vec![pieces(&["Good", " my"]), pieces(&["Good", " lord"])],
        1,
    );
    app.conversation
        .replies
        .insert(1, branches.clone().unwrap());
    app.save_session_now();
    let id = app.sessions.id.clone();

    let mut other = self::app(&store);
    assert_ne!(other.sessions.id, id);
    other.restore_session(store.open(&id).unwrap());
    assert_eq!(other.sessions.id, id);
    assert_eq!(other.conversation.turns, app.conversation.turns);
    assert_eq!(other.conversation.system, "be brief");
    assert_eq!(other.params.temperature, 0.25);
    assert_eq!(other.conversation.replies.get(&1), branches.as_ref());
    assert_eq!(other.to_session(), app.to_session());
}

#[test]
fn new_rename_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let mut app = app(&store);
    say(&mut app, Role::User, "first chat");
    app.save_session_now();
    let first = app.sessions.id.clone();
    app.command("rename  Romeo and Juliet ");
    assert_eq!(store.open(&first).unwrap().title, "Romeo and Juliet");
    app.command("new");
    assert!(app.conversation.turns.is_empty());
    assert_ne!(app.sessions.id, first);
    say(&mut app, Role::User, "second chat");
    app.autosave();
    app.command("sessions");
    let picker = app.overlay.sessions.as_ref().expect("the picker opens");
    // Both were written in the same second: the order between them is either.
    let mut titles: Vec<&str> = picker.list.iter().map(|s| s.title.as_str()).collect();
    titles.sort();
    assert_eq!(titles, ["Romeo and Juliet", "second chat"]);
    assert_eq!(picker_id(&app), app.sessions.id, "on this conversation");
    press(&mut app, KeyCode::Esc);
    assert!(app.overlay.sessions.is_none());
    let second = app.sessions.id.clone();
    app.command("delete");
    assert!(app.message.as_deref().unwrap().contains("y deletes it"));
    press(&mut app, KeyCode::Char('n'));
    assert_eq!(
        app.message.as_deref(),
        Some(format!("kept {second}").as_str())
    );
    assert!(store.open(&second).is_ok(), "any key but y keeps it");
    press(&mut app, KeyCode::Char('y'));
    assert!(
        store.open(&second).is_ok(),
        "the question was answered already"
    );
    app.command("delete");
    press(&mut app, KeyCode::Char('y'));
    assert_eq!(
        app.message.as_deref(),
        Some(format!("deleted {second}").as_str())
    );
    assert!(store.open(&second).is_err());
    app.command(&format!("resume {first}"));
    assert_eq!(app.sessions.id, first);
    assert_eq!(app.conversation.turns[0].text, "first chat");
    app.command("resume nope");
    assert!(app
        .message
        .as_deref()
        .unwrap()
        .contains("no saved session \"nope\""));
}

#[test]
fn a_session_of_another_model_says_so_and_goes_on_with_the_loaded_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let mut app = app(&store);
    let mut saved = app.to_session();
    saved.model = "gpt2-large".into();
    say(&mut app, Role::User, "hello");
    saved.turns = app.conversation.turns.clone();
    app.restore_session(saved);
    app.update(crate::tui::state::Action::Loaded(
        crate::tui::state::ModelSummary {
            name: "tiny-gpt2".into(),
            parameters: 1,
            device: "cpu".into(),
            dtype: "f32".into(),
            window: 64,
            load_notes: vec![],
        },
    ));
    assert_eq!(
        app.message.as_deref(),
        Some("this conversation was written with gpt2-large; it goes on with tiny-gpt2")
    );
    assert_eq!(app.to_session().model, "tiny-gpt2");
    assert_eq!(store.open(&app.sessions.id).unwrap().model, "tiny-gpt2");
}

#[test]
fn the_picker_opens_deletes_after_a_yes_and_names_unreadable_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let mut app = app(&store);
    say(&mut app, Role::User, "older chat");
    app.save_session_now();
    let older = app.sessions.id.clone();
    app.command("new");
    say(&mut app, Role::User, "newer chat");
    app.save_session_now();
    let newer = app.sessions.id.clone();
    std::fs::write(dir.path().join("broken.json"), "{not json").unwrap();
    app.command("sessions");
    let picker = app.overlay.sessions.as_ref().unwrap();
    assert_eq!(picker.list.len(), 2);
    assert_eq!(picker.problems.len(), 1);
    assert!(picker.problems[0].to_string().contains("broken.json"));

    // To the older one (both were saved in the same second: either order); d asks, n keeps,
    // d and y delete it, and the list is read again.
    for _ in 0..3 {
        press(&mut app, KeyCode::Down);
    }
    assert_eq!(
        app.overlay.sessions.as_ref().unwrap().selected,
        1,
        "stops at the end"
    );
    if picker_id(&app) != older {
        press(&mut app, KeyCode::Up);
    }
    assert_eq!(picker_id(&app), older);
    press(&mut app, KeyCode::Char('d'));
    assert!(app.overlay.sessions.as_ref().unwrap().confirm_delete);
    press(&mut app, KeyCode::Char('n'));
    assert!(store.open(&older).is_ok());
    press(&mut app, KeyCode::Char('d'));
    press(&mut app, KeyCode::Char('y'));
    assert!(store.open(&older).is_err());
    assert_eq!(
        app.message.as_deref(),
        Some(format!("deleted {older}").as_str())
    );
    let picker = app.overlay.sessions.as_ref().unwrap();
    assert_eq!(picker.list.len(), 1);
    assert_eq!(picker.selected, 0);
    assert_eq!(
        app.sessions.id, newer,
        "another session's deletion leaves this one"
    );

    // Enter opens the selected one (here the one open already) and closes the picker.
    app.command("new");
    app.command("sessions");
    press(&mut app, KeyCode::Enter);
    assert!(app.overlay.sessions.is_none());
    assert_eq!(app.sessions.id, newer);
    assert_eq!(app.conversation.turns[0].text, "newer chat");
}

#[test]
fn deleting_the_last_listed_session_closes_the_picker() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let mut app = app(&store);
    say(&mut app, Role::User, "only chat");
    app.command("sessions");
    press(&mut app, KeyCode::Char('d'));
    press(&mut app, KeyCode::Char('y'));
    assert!(store.list().unwrap().0.is_empty());
    assert!(app.overlay.sessions.is_none(), "nothing left to list");
}
