use super::super::replies::{Branch, Branches, Piece};
use super::*;
use crate::engine::chat::Role;
use crate::engine::chat::{ChatFormat, Turn};
use crate::generate::SamplingParams;
use crate::tui::state::{EngineState, Mode};

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
    let listed = app.message.clone().unwrap();
    assert!(listed.starts_with("2 saved"), "{listed}");
    assert!(
        listed.contains("Romeo and Juliet") && listed.contains("(this one) second chat"),
        "{listed}"
    );
    let second = app.sessions.id.clone();
    app.command("delete");
    assert!(app.message.as_deref().unwrap().contains("/delete again"));
    app.command("help");
    app.command("delete");
    assert!(
        app.message.as_deref().unwrap().contains("/delete again"),
        "another command disarms"
    );
    app.command("delete");
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
        },
    ));
    assert_eq!(
        app.message.as_deref(),
        Some("this conversation was written with gpt2-large; it goes on with tiny-gpt2")
    );
    assert_eq!(app.to_session().model, "tiny-gpt2");
    assert_eq!(store.open(&app.sessions.id).unwrap().model, "tiny-gpt2");
}
