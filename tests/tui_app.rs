//! The interface's state machine and its rendering, without a terminal.

mod common;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use gpt2_tui::config::Config;
use gpt2_tui::engine::chat::{ChatFormat, Role};
use gpt2_tui::engine::{
    AttentionMap, Candidate, Prompt, PromptPart, PromptScore, PromptToken, Reply, Request,
};
use gpt2_tui::generate::bias::{BiasToken, LogitBias};
use gpt2_tui::generate::session::{FinishReason, Stats};
use gpt2_tui::generate::trace::{Stage, Trace, TraceRow};
use gpt2_tui::generate::SamplingParams;
use gpt2_tui::tui::state::{Action, App, EngineState, Focus, Mode, ModelSummary};
use gpt2_tui::tui::theme::load_themes;
use gpt2_tui::tui::view;
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

fn key(code: KeyCode) -> Action {
    Action::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn ctrl(c: char) -> Action {
    Action::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
}

/// Alt and a character (Alt+R regenerates; Ctrl+R searches the input history).
fn alt(c: char) -> Action {
    Action::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::ALT))
}

fn type_text(app: &mut App, text: &str) -> Vec<Request> {
    let mut out = Vec::new();
    for c in text.chars() {
        out.extend(app.update(key(KeyCode::Char(c))));
    }
    out
}

fn send(app: &mut App, text: &str) -> Vec<Request> {
    type_text(app, text);
    app.update(key(KeyCode::Enter))
}

fn stream(app: &mut App, pieces: &[&str]) {
    app.update(Action::Reply(Reply::Started {
        prompt_tokens: 10,
        dropped_turns: 0,
        dropped_tokens: 0,
    }));
    for (i, p) in pieces.iter().enumerate() {
        app.update(Action::Reply(token(1, p.to_string(), -1.0, 11 + i)));
    }
}

/// A streamed token with made-up alternatives: itself and three others, less likely.
fn token(id: u32, text: String, logprob: f32, context: usize) -> Reply {
    let p = logprob.exp();
    let mut top = vec![Candidate {
        id,
        text: text.clone(),
        prob: p,
        ends: false,
    }];
    top.extend((0..3).map(|i| Candidate {
        id: 100 + i,
        text: format!(" alt{i}"),
        prob: (1.0 - p) / (2.0 + i as f32),
        ends: false,
    }));
    Reply::Token {
        id,
        text,
        logprob,
        context,
        top,
        params: SamplingParams {
            seed: Some(context as u64),
            ..SamplingParams::default()
        },
        trace: None,
    }
}

fn finish(app: &mut App, reason: Option<FinishReason>) {
    // Fixed statistics keep the status bar (and so the snapshots) the same on every run.
    let stats = Stats {
        prompt_tokens: 12,
        prefill_tokens: 5,
        generated_tokens: 10,
        decode_time: std::time::Duration::from_secs(1),
        ..Stats::default()
    };
    app.update(Action::Reply(Reply::Finished {
        reason,
        text: String::new(),
        stats,
    }));
}

#[test]
fn sending_a_message_asks_for_a_chat_generation_and_streams_the_reply() {
    let mut app = app();
    let requests = send(&mut app, "Good morrow");
    let [Request::Generate {
        prompt: Prompt::Chat { turns, format, .. },
        ..
    }] = requests.as_slice()
    else {
        panic!("expected one generate request, got {requests:?}")
    };
    assert_eq!(turns.len(), 1);
    assert_eq!(*format, ChatFormat::Dialogpt);
    assert!(app.is_generating());
    assert!(app.input.text.is_empty());
    stream(&mut app, &["Good", " morrow", " to you"]);
    finish(&mut app, Some(FinishReason::Eos));
    assert_eq!(app.conversation.turns[1].role, Role::Model);
    assert_eq!(app.conversation.turns[1].text, "Good morrow to you");
    assert_eq!(app.engine.state, EngineState::Idle);
}

#[test]
fn panel_keys_change_the_setting_and_reach_a_running_generation() {
    let mut app = app();
    send(&mut app, "hi");
    app.update(key(KeyCode::Tab));
    assert_eq!(app.panes.focus, Focus::Panel);
    let requests = app.update(key(KeyCode::Right));
    assert_eq!(app.params.temperature, 0.85);
    assert!(matches!(requests.as_slice(), [Request::SetParams(p)] if p.temperature == 0.85));
    app.update(key(KeyCode::Down));
    app.update(key(KeyCode::Char('-')));
    assert_eq!(app.params.top_k, 35);
}

#[test]
fn set_command_changes_the_panel_value_and_reports_errors() {
    let mut app = app();
    assert!(
        send(&mut app, "/set temperature 0.42").is_empty(),
        "idle: nothing to tell the engine"
    );
    assert_eq!(app.params.temperature, 0.42);
    send(&mut app, "/set top_p 7");
    assert_eq!(app.params.top_p, 0.95);
    assert!(app.message.as_deref().unwrap().contains("top-p 7"));
}

#[test]
fn escape_cancels_and_ctrl_c_quits_only_when_idle() {
    let mut app = app();
    send(&mut app, "hi");
    assert!(matches!(
        app.update(key(KeyCode::Esc)).as_slice(),
        [Request::Cancel]
    ));
    assert!(matches!(
        app.update(ctrl('c')).as_slice(),
        [Request::Cancel]
    ));
    assert!(!app.quit);
    stream(&mut app, &["partial"]);
    finish(&mut app, None);
    assert_eq!(
        app.conversation.turns[1].text, "partial",
        "a stopped reply keeps its text"
    );
    app.update(ctrl('c'));
    assert!(app.quit);
}

#[test]
fn regenerate_replaces_the_last_reply_and_undo_removes_the_exchange() {
    let mut app = app();
    send(&mut app, "hi");
    stream(&mut app, &["first"]);
    finish(&mut app, Some(FinishReason::Eos));
    let requests = app.update(alt('r'));
    assert_eq!(app.conversation.turns.len(), 1, "the old reply is gone");
    assert!(matches!(requests.as_slice(), [Request::Generate { .. }]));
    stream(&mut app, &["second"]);
    finish(&mut app, Some(FinishReason::Eos));
    assert_eq!(app.conversation.turns[1].text, "second");
    send(&mut app, "/undo");
    assert!(app.conversation.turns.is_empty());
    assert_eq!(
        app.input.text, "hi",
        "the undone message comes back to the input"
    );
}

#[test]
fn history_recall_newlines_and_paste() {
    let mut app = app();
    send(&mut app, "one");
    finish(&mut app, Some(FinishReason::Eos));
    send(&mut app, "two");
    finish(&mut app, Some(FinishReason::Eos));
    app.update(key(KeyCode::Up));
    assert_eq!(app.input.text, "two");
    app.update(key(KeyCode::Up));
    assert_eq!(app.input.text, "one");
    app.update(key(KeyCode::Down));
    assert_eq!(app.input.text, "two");
    app.update(ctrl('j'));
    app.update(Action::Paste("pasted\r\ntext".into()));
    assert_eq!(app.input.text, "two\npasted\ntext");
}

#[test]
fn completion_mode_continues_the_document() {
    let mut app = app();
    send(&mut app, "/mode complete");
    assert_eq!(app.conversation.mode, Mode::Complete);
    let requests = send(&mut app, "Once upon a time");
    assert!(
        matches!(requests.as_slice(), [Request::Generate { prompt: Prompt::Complete { text }, .. }] if text == "Once upon a time")
    );
    stream(&mut app, &[" there", " was"]);
    finish(&mut app, Some(FinishReason::MaxTokens));
    assert_eq!(app.conversation.document, "Once upon a time there was");
    app.update(alt('r'));
    assert_eq!(
        app.conversation.document, "Once upon a time",
        "regenerate drops the last continuation"
    );
}

#[test]
fn save_load_and_export_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = app();
    send(&mut app, "/set seed 7");
    send(&mut app, "hello");
    stream(&mut app, &["hi there"]);
    finish(&mut app, Some(FinishReason::Eos));
    let json = dir.path().join("t.json");
    let md = dir.path().join("t.md");
    send(&mut app, &format!("/save {}", json.display()));
    send(&mut app, &format!("/export {}", md.display()));
    assert!(std::fs::read_to_string(&md)
        .unwrap()
        .contains("**GPT-2**: hi there"));
    let mut other = self::app();
    send(&mut other, &format!("/load {}", json.display()));
    assert_eq!(other.conversation.turns, app.conversation.turns);
    assert_eq!(other.params.seed, Some(7));
    send(&mut other, "/load /no/such/file.json");
    assert!(other
        .message
        .as_deref()
        .unwrap()
        .contains("/no/such/file.json"));
}

#[test]
fn themes_cycle_and_unknown_names_are_reported() {
    let mut app = app();
    app.update(ctrl('t'));
    assert_eq!(app.look.theme.name, "high-contrast");
    send(&mut app, "/theme light");
    assert_eq!(app.look.theme.name, "light");
    send(&mut app, "/theme neon");
    assert!(app
        .message
        .as_deref()
        .unwrap()
        .contains("no theme \"neon\""));
}

#[test]
fn the_example_config_parses_and_matches_the_defaults() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml"))
        .unwrap();
    let config = Config::parse(&text).unwrap();
    assert_eq!(config.sampling, SamplingParams::default());
    assert_eq!(config.model.as_deref(), Some("bundled"));
    assert_eq!(config.ui.theme, "dark");
}

thread_local! {
    /// What the view keeps between frames, one per test (each test runs on its own thread).
    static SCREEN: std::cell::RefCell<view::Screen> = Default::default();
}

/// Draws a frame as the event loop does: with the view's own cache, then hands the layout back.
fn render(app: &mut App, width: u16, height: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    SCREEN.with_borrow_mut(|screen| {
        terminal.draw(|f| view::draw(f, app, screen)).unwrap();
        app.update(Action::Drawn(screen.layout()));
    });
    terminal
}

fn conversation() -> App {
    let mut app = app();
    send(&mut app, "What light through yonder window breaks?");
    stream(&mut app, &["It is the east, and Juliet is the sun."]);
    finish(&mut app, Some(FinishReason::Eos));
    app
}

#[test]
fn snapshot_conversation_and_panel_after_a_live_change() {
    let mut app = conversation();
    app.update(key(KeyCode::Tab));
    app.update(key(KeyCode::Right));
    app.update(key(KeyCode::Right));
    insta::assert_snapshot!(render(&mut app, 90, 20).backend());
}

#[test]
fn snapshot_help_overlay() {
    let mut app = conversation();
    app.update(key(KeyCode::F(1)));
    insta::assert_snapshot!(render(&mut app, 100, 30).backend());
}

#[test]
fn snapshot_tiny_terminal_does_not_panic() {
    let mut app = conversation();
    insta::assert_snapshot!(render(&mut app, 20, 5).backend());
    for (w, h) in [(1, 1), (0, 0), (3, 2), (59, 7), (200, 3)] {
        render(&mut app, w, h);
    }
}

#[test]
fn snapshot_each_theme_with_its_colours() {
    let (themes, _) = load_themes(None);
    for name in themes.keys() {
        let mut app = conversation();
        send(&mut app, &format!("/theme {name}"));
        let terminal = render(&mut app, 64, 16);
        let buffer = terminal.backend().buffer();
        // The speaker's name is drawn in the theme's colour for that speaker.
        let you = (0..16)
            .flat_map(|y| (0..64).map(move |x| (x, y)))
            .find(|&(x, y)| buffer[(x, y)].symbol() == "Y")
            .unwrap();
        assert_eq!(buffer[you].fg, app.look.theme.user, "{name}");
        insta::assert_debug_snapshot!(format!("theme_{name}"), buffer);
    }
}

#[test]
fn probability_colouring_records_each_token_while_streaming() {
    let mut app = app();
    send(&mut app, "hi");
    app.update(Action::Reply(Reply::Started {
        prompt_tokens: 3,
        dropped_turns: 0,
        dropped_tokens: 0,
    }));
    app.update(Action::Reply(token(5, " sure".into(), (0.9f32).ln(), 4)));
    app.update(Action::Reply(token(6, " thing".into(), (0.05f32).ln(), 5)));
    let pieces = app.conversation.replies[&1].pieces();
    assert_eq!(pieces.len(), 2);
    assert!((pieces[0].prob - 0.9).abs() < 1e-6);
    assert_eq!(
        app.look.theme.probability_color(pieces[0].prob),
        app.look.theme.probability[4]
    );
    assert_eq!(
        app.look.theme.probability_color(pieces[1].prob),
        app.look.theme.probability[0]
    );
    app.update(key(KeyCode::F(3)));
    assert!(app.look.show_probs);
    // Regenerating drops the old reply's probabilities with it.
    finish(&mut app, Some(FinishReason::Eos));
    app.update(alt('r'));
    assert!(!app.conversation.replies.contains_key(&1));
}

fn inspection_app(theme: &str) -> App {
    let mut app = conversation();
    let model = common::load_session("tiny-gpt2");
    app.engine.tokenizer = Some(model.shared_tokenizer());
    app.engine.anatomy = Some(gpt2_tui::engine::inspect::Anatomy::of(
        model.config(),
        model.model().has_tied_head(),
    ));
    send(&mut app, &format!("/theme {theme}"));
    send(&mut app, "hi");
    app.update(Action::Reply(Reply::Started {
        prompt_tokens: 3,
        dropped_turns: 0,
        dropped_tokens: 0,
    }));
    for (text, p) in [
        (" Good", 0.95f32),
        (" my", 0.4),
        (" lord", 0.2),
        ("!", 0.05),
    ] {
        app.update(Action::Reply(token(1, text.into(), p.ln(), 4)));
    }
    finish(&mut app, Some(FinishReason::Eos));
    app
}

#[test]
fn live_token_count_follows_the_input() {
    let mut app = inspection_app("dark");
    type_text(&mut app, "Hello, world! It's a test.");
    assert_eq!(app.input.tokens, 9);
    app.update(key(KeyCode::Backspace));
    assert_eq!(app.input.tokens, 8);
}

#[test]
fn snapshot_each_inspection_view_in_each_theme() {
    let (themes, _) = load_themes(None);
    for name in themes.keys() {
        let mut app = inspection_app(name);
        app.update(key(KeyCode::F(3)));
        insta::assert_debug_snapshot!(
            format!("probabilities_{name}"),
            render(&mut app, 70, 12).backend().buffer()
        );
        type_text(&mut app, "naïve café");
        app.update(key(KeyCode::F(4)));
        app.update(key(KeyCode::F(4)));
        insta::assert_debug_snapshot!(
            format!("tokens_{name}"),
            render(&mut app, 70, 12).backend().buffer()
        );
        app.update(key(KeyCode::F(5)));
        insta::assert_debug_snapshot!(
            format!("anatomy_{name}"),
            render(&mut app, 90, 16).backend().buffer()
        );
    }
}

#[test]
fn scrolling_back_holds_the_view_while_the_reply_streams_and_pgdn_returns_to_it() {
    let mut app = app();
    for i in 0..30 {
        send(&mut app, &format!("message {i}"));
        stream(&mut app, &["a reply"]);
        finish(&mut app, Some(FinishReason::Eos));
    }
    render(&mut app, 80, 20);
    let (total, height) = app.body_metrics();
    assert!(total > height, "more lines than fit: {total} > {height}");
    assert_eq!(app.panes.scroll_top, None, "at the bottom, following");
    app.update(key(KeyCode::PageUp));
    let top = app.panes.scroll_top.expect("scrolled back");
    assert_eq!(top, total - height - (height - 1), "one page less one line");
    // New text arrives: the view stays where the reader left it.
    send(&mut app, "/set max_tokens 10");
    app.engine.state = EngineState::Idle;
    send(&mut app, "more");
    app.update(key(KeyCode::PageUp));
    let top = app.panes.scroll_top.unwrap();
    stream(&mut app, &["line\n", "line\n", "line\n"]);
    let screen = render(&mut app, 80, 20);
    assert_eq!(app.panes.scroll_top, Some(top));
    assert!(format!("{:?}", screen.backend().buffer()).contains("more · PgDn"));
    // Far past the top is clamped, so one PgDn per page brings it back down.
    for _ in 0..100 {
        app.update(Action::Scroll(3));
    }
    assert_eq!(app.panes.scroll_top, Some(0));
    for _ in 0..100 {
        app.update(key(KeyCode::PageDown));
    }
    assert_eq!(
        app.panes.scroll_top, None,
        "back at the bottom: following again"
    );
}

#[test]
fn a_message_sent_while_loading_is_queued_and_sent_when_the_model_is_ready() {
    let (themes, _) = load_themes(None);
    let mut app = App::new(
        SamplingParams::default(),
        Mode::Chat,
        ChatFormat::Transcript,
        String::new(),
        themes,
        "dark",
    );
    app.update(Action::Reply(Reply::Progress(
        "downloading model.safetensors 40%".into(),
    )));
    assert_eq!(
        app.engine.state,
        EngineState::Loading("downloading model.safetensors 40%".into())
    );
    assert!(send(&mut app, "hello").is_empty());
    assert!(app.engine.queued);
    assert!(send(&mut app, "again").is_empty(), "one at a time");
    assert_eq!(
        app.input.text, "again",
        "a refused message stays in the input"
    );
    let requests = app.update(Action::Loaded(ModelSummary {
        name: "gpt2".into(),
        parameters: 124_000_000,
        device: "cpu".into(),
        dtype: "f32".into(),
        window: 1024,
        load_notes: vec![],
    }));
    assert!(
        matches!(requests.as_slice(), [Request::Generate { prompt: Prompt::Chat { turns, .. }, .. }] if turns.len() == 1)
    );
    assert!(app.is_generating() && !app.engine.queued);
}

#[test]
fn engine_errors_are_shown_and_a_dead_engine_refuses_politely() {
    let mut app = app();
    send(&mut app, "hi");
    app.update(Action::Reply(Reply::Error(
        "the engine stopped: boom".into(),
    )));
    assert_eq!(app.engine.state, EngineState::Idle);
    assert_eq!(app.message.as_deref(), Some("the engine stopped: boom"));
    // The next request cannot be delivered: the interface says so and stays usable.
    send(&mut app, "again");
    app.update(Action::EngineGone);
    assert!(matches!(app.engine.state, EngineState::Failed(_)));
    assert!(send(&mut app, "and again").is_empty());
    assert_eq!(app.input.text, "and again");
    let screen = render(&mut app, 90, 12);
    assert!(format!("{:?}", screen.backend().buffer()).contains("failed"));
}

#[test]
fn context_use_and_window_overflow_reach_the_status_bar() {
    let mut app = app();
    send(&mut app, "hi");
    app.update(Action::Reply(Reply::Started {
        prompt_tokens: 200,
        dropped_turns: 2,
        dropped_tokens: 0,
    }));
    app.update(Action::Reply(token(1, "x".into(), -1.0, 240)));
    assert_eq!(app.stats.context_used, 240);
    let screen = render(&mut app, 140, 12);
    let buffer = screen.backend().buffer().clone();
    let text = format!("{buffer:?}");
    assert!(text.contains("ctx 240/256"), "{text}");
    assert!(text.contains("2 old turns dropped"), "{text}");
    // Past 90% of the window the count is drawn in the warning colour.
    let (x, y) = (0..140)
        .map(|x| (x, 11))
        .find(|&(x, y)| buffer[(x, y)].symbol() == "c" && buffer[(x + 1, y)].symbol() == "t")
        .unwrap();
    assert_eq!(buffer[(x, y)].fg, app.look.theme.warning);
    app.update(Action::Reply(Reply::ContextShifted(2)));
    let text = format!("{:?}", render(&mut app, 200, 12).backend().buffer());
    assert!(text.contains("window full ×2"), "{text}");
    finish(&mut app, Some(FinishReason::MaxTokens));
    let text = format!("{:?}", render(&mut app, 200, 12).backend().buffer());
    assert!(text.contains("prompt 12 · 5 new"), "{text}");
}

#[test]
fn resize_and_unknown_commands_change_nothing_else() {
    let mut app = conversation();
    let turns = app.conversation.turns.clone();
    assert!(app.update(Action::Resize).is_empty());
    send(&mut app, "/frobnicate");
    assert!(app.message.as_deref().unwrap().contains("unknown command"));
    assert_eq!(app.conversation.turns, turns);
    for (w, h) in [(20, 5), (300, 80), (21, 6), (20, 5)] {
        render(&mut app, w, h);
    }
}

#[test]
fn snapshot_help_overlay_scrolls_on_a_small_terminal() {
    let mut app = conversation();
    app.update(key(KeyCode::F(1)));
    for _ in 0..40 {
        app.update(key(KeyCode::Down));
    }
    assert!(
        app.overlay.show_help,
        "arrows scroll the help, they do not close it"
    );
    insta::assert_snapshot!(render(&mut app, 80, 24).backend());
    app.update(key(KeyCode::Char('x')));
    assert!(!app.overlay.show_help);
    assert!(app.input.text.is_empty(), "the closing key is not typed");
}

fn screen_text(terminal: &Terminal<TestBackend>) -> String {
    let buffer = terminal.backend().buffer();
    let area = buffer.area;
    (0..area.height)
        .map(|y| {
            (0..area.width)
                .map(|x| buffer[(x, y)].symbol())
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn redrawing_after_changes_shows_the_new_text_not_an_old_frame() {
    // Frames reuse the wrapped lines of blocks that did not change; every change must show.
    let mut app = conversation();
    render(&mut app, 80, 20);
    app.update(alt('r'));
    stream(&mut app, &["It is the west, and Romeo is the moon."]);
    finish(&mut app, Some(FinishReason::Eos));
    let screen = screen_text(&render(&mut app, 80, 20));
    assert!(screen.contains("Romeo is the moon"), "{screen}");
    assert!(!screen.contains("Juliet"), "{screen}");
    // A narrower pane wraps again.
    let screen = screen_text(&render(&mut app, 62, 20));
    assert!(screen.contains("GPT-2: It is the west, and"), "{screen}");
    // So do a new theme and the probability view.
    send(&mut app, "/theme light");
    let terminal = render(&mut app, 80, 20);
    let buffer = terminal.backend().buffer();
    let (x, y) = (0..20)
        .flat_map(|y| (0..80).map(move |x| (x, y)))
        .find(|&(x, y)| buffer[(x, y)].symbol() == "Y")
        .unwrap();
    assert_eq!(buffer[(x, y)].fg, app.look.theme.user);
    send(&mut app, "/system Speak as in Verona.");
    assert!(screen_text(&render(&mut app, 80, 20)).contains("system: Speak as in Verona."));
    send(&mut app, "/clear");
    assert!(screen_text(&render(&mut app, 80, 20)).contains("Type a message"));
}

#[test]
fn completion_mode_colours_exactly_the_continuation() {
    let mut app = app();
    send(&mut app, "/mode complete");
    // The given text breaks at a space at the edge of the pane.
    send(&mut app, "aaaa bbbb cccc dddd");
    stream(&mut app, &[" eeee ffff"]);
    finish(&mut app, Some(FinishReason::MaxTokens));
    let terminal = render(&mut app, 11, 14);
    let buffer = terminal.backend().buffer();
    let screen = screen_text(&terminal);
    for (word, colour) in [
        ("aaaa", app.look.theme.foreground),
        ("dddd", app.look.theme.foreground),
        ("eeee", app.look.theme.model),
        ("ffff", app.look.theme.model),
    ] {
        let (y, line) = screen
            .lines()
            .enumerate()
            .find(|(_, l)| l.contains(word))
            .unwrap_or_else(|| panic!("{word} on screen:\n{screen}"));
        let x = line.chars().position(|_| true).unwrap()
            + line[..line.find(word).unwrap()].chars().count();
        assert_eq!(buffer[(x as u16, y as u16)].fg, colour, "{word}\n{screen}");
    }
}

/// Two exchanges, each reply streamed token by token (the helper gives every token made-up
/// alternatives and a seed equal to its context count).
fn two_replies() -> App {
    let mut app = app();
    send(&mut app, "Good morrow");
    stream(&mut app, &["Good", " morrow", " to", " you"]);
    finish(&mut app, Some(FinishReason::Eos));
    send(&mut app, "How now?");
    stream(&mut app, &["Well", ",", " sir"]);
    finish(&mut app, Some(FinishReason::Eos));
    app
}

fn cursor(app: &App) -> (usize, usize) {
    let inspect = app.inspect.as_ref().expect("the token cursor is shown");
    (inspect.reply, inspect.token)
}

#[test]
fn the_token_cursor_moves_by_token_and_between_replies() {
    let mut app = two_replies();
    app.update(key(KeyCode::F(6)));
    assert_eq!(
        cursor(&app),
        (3, 2),
        "starts on the last token of the last reply"
    );
    app.update(key(KeyCode::Left));
    assert_eq!(cursor(&app), (3, 1));
    for _ in 0..5 {
        app.update(key(KeyCode::Right));
    }
    assert_eq!(cursor(&app), (3, 2), "stops at the last token");
    app.update(key(KeyCode::Home));
    assert_eq!(cursor(&app), (3, 0));
    app.update(key(KeyCode::Up));
    assert_eq!(cursor(&app), (1, 3), "the earlier reply, at its last token");
    app.update(key(KeyCode::Up));
    assert_eq!(cursor(&app), (1, 3), "no reply before the first");
    app.update(key(KeyCode::Down));
    assert_eq!(cursor(&app), (3, 2));
    // Keys the cursor does not use neither type nor leak into the input.
    app.update(key(KeyCode::Char('z')));
    assert!(app.input.text.is_empty());
    app.update(key(KeyCode::Esc));
    assert!(app.inspect.is_none());
    // Nothing to inspect yet: said, not a panic.
    let mut empty = self::app();
    empty.update(key(KeyCode::F(6)));
    assert!(empty.inspect.is_none());
    assert!(empty.message.as_deref().unwrap().contains("no reply"));
}

#[test]
fn the_popup_shows_the_tokens_recorded_alternatives_and_settings() {
    let mut app = two_replies();
    app.update(key(KeyCode::F(6)));
    app.update(key(KeyCode::Left));
    let piece = app.conversation.replies[&3].pieces()[1].clone();
    assert_eq!(piece.text, ",");
    let screen = screen_text(&render(&mut app, 100, 30));
    assert!(screen.contains("token 2/3"), "{screen}");
    for (row, candidate) in piece.top.iter().enumerate() {
        let want = format!(
            "{:>2} {:<18}{:>6.2}%",
            row + 1,
            format!("{:?}", candidate.text),
            candidate.prob * 100.0
        );
        assert!(screen.contains(&want), "row {want:?} in\n{screen}");
    }
    // The settings in force at that token: the helper's seed is the token's context count.
    assert_eq!(piece.params.seed, Some(12));
    assert!(screen.contains("seed 12"), "{screen}");
    assert!(screen.contains("temperature 0.80"), "{screen}");
    // The token under the cursor is drawn in the theme's highlight.
    let terminal = render(&mut app, 100, 30);
    let buffer = terminal.backend().buffer();
    let (x, y) = find(&terminal, "GPT-2: Well").expect("the reply on screen");
    let comma = (x + "GPT-2: Well".len() as u16, y);
    assert_eq!(buffer[comma].symbol(), ",");
    assert_eq!(buffer[comma].bg, app.look.theme.accent);
}

/// Where `text` starts on the screen.
fn find(terminal: &Terminal<TestBackend>, text: &str) -> Option<(u16, u16)> {
    screen_text(terminal)
        .lines()
        .enumerate()
        .find_map(|(y, line)| {
            let at = line.find(text)?;
            Some((line[..at].chars().count() as u16, y as u16))
        })
}

#[test]
fn choosing_a_candidate_branches_and_the_old_branch_comes_back_exactly() {
    let mut app = two_replies();
    let original = app.conversation.turns[3].text.clone();
    app.update(key(KeyCode::F(6)));
    app.update(key(KeyCode::Left));
    app.update(key(KeyCode::Enter));
    app.update(key(KeyCode::Down));
    app.update(key(KeyCode::Down));
    let chosen = app.conversation.replies[&3].pieces()[1].top[2].clone();
    let requests = app.update(key(KeyCode::Enter));
    let [Request::Branch {
        prompt: Prompt::Chat { turns, .. },
        reply,
        params,
    }] = requests.as_slice()
    else {
        panic!("expected one branch request, got {requests:?}")
    };
    assert_eq!(
        turns,
        &app.conversation.turns[..3],
        "the prompt ends with the user's message"
    );
    assert_eq!(
        reply,
        &vec![1, chosen.id],
        "the kept token, then the chosen one"
    );
    assert_eq!(params, &app.params);
    assert!(app.is_generating());
    assert_eq!(
        app.conversation.turns[3].text,
        format!("Well{}", chosen.text)
    );
    stream(&mut app, &[" good", " friend"]);
    finish(&mut app, Some(FinishReason::Eos));
    let branched = format!("Well{} good friend", chosen.text);
    assert_eq!(app.conversation.turns[3].text, branched);
    assert_eq!(app.conversation.replies[&3].count(), 2);
    assert!(screen_text(&render(&mut app, 100, 30)).contains("branch 2/2"));
    app.update(key(KeyCode::Char('b')));
    assert_eq!(
        app.conversation.turns[3].text, original,
        "the first branch, exactly"
    );
    assert_eq!(app.conversation.replies[&3].pieces().len(), 3);
    app.update(key(KeyCode::Char('B')));
    assert_eq!(app.conversation.turns[3].text, branched);
    // The next message is answered after the branch shown.
    app.update(key(KeyCode::Esc));
    let requests = send(&mut app, "And?");
    assert!(
        matches!(requests.as_slice(), [Request::Generate { prompt: Prompt::Chat { turns, .. }, .. }] if turns[3].text == branched)
    );
}

#[test]
fn branching_is_refused_while_writing_and_on_an_earlier_reply() {
    let mut app = two_replies();
    app.update(key(KeyCode::F(6)));
    app.update(key(KeyCode::Up));
    app.update(key(KeyCode::Enter));
    assert!(app.update(key(KeyCode::Enter)).is_empty());
    assert!(app
        .message
        .as_deref()
        .unwrap()
        .contains("only the last reply"));
    assert_eq!(app.conversation.replies[&1].count(), 1);
    app.update(key(KeyCode::Esc));
    app.update(key(KeyCode::Esc));
    send(&mut app, "More");
    stream(&mut app, &["Aye"]);
    app.update(key(KeyCode::F(6)));
    assert_eq!(
        cursor(&app),
        (5, 0),
        "the reply being written can be inspected"
    );
    app.update(key(KeyCode::Enter));
    assert!(app.update(key(KeyCode::Enter)).is_empty());
    assert!(app.message.as_deref().unwrap().contains("still writing"));
    // Regenerating drops the reply, and the cursor with it.
    app.update(key(KeyCode::Esc));
    app.update(key(KeyCode::Esc));
    app.update(key(KeyCode::Esc));
    finish(&mut app, None);
    app.update(key(KeyCode::F(6)));
    app.update(alt('r'));
    assert!(app.inspect.is_none() && !app.conversation.replies.contains_key(&5));
}

#[test]
fn completion_mode_branches_the_continuation_and_restores_it() {
    let mut app = app();
    send(&mut app, "/mode complete");
    send(&mut app, "Once upon");
    stream(&mut app, &[" a", " time", " there"]);
    finish(&mut app, Some(FinishReason::MaxTokens));
    let original = app.conversation.document.clone();
    app.update(key(KeyCode::F(6)));
    app.update(key(KeyCode::Left));
    app.update(key(KeyCode::Enter));
    app.update(key(KeyCode::Down));
    let requests = app.update(key(KeyCode::Enter));
    let [Request::Branch {
        prompt: Prompt::Complete { text },
        reply,
        ..
    }] = requests.as_slice()
    else {
        panic!("expected one branch request, got {requests:?}")
    };
    assert_eq!(text, "Once upon");
    assert_eq!(reply, &vec![1, 100]);
    assert_eq!(app.conversation.document, "Once upon a alt0");
    stream(&mut app, &[" end"]);
    finish(&mut app, Some(FinishReason::MaxTokens));
    assert_eq!(app.conversation.document, "Once upon a alt0 end");
    app.update(key(KeyCode::Char('b')));
    assert_eq!(app.conversation.document, original);
}

fn attention_map() -> AttentionMap {
    // Two layers of two heads over three tokens: each head looks mostly at one token.
    let head = |k: usize| -> Vec<f32> { (0..3).map(|i| if i == k { 0.8 } else { 0.1 }).collect() };
    AttentionMap {
        tokens: vec!["Good".into(), " morrow".into(), " to".into()],
        weights: vec![vec![head(0), head(1)], vec![head(2), head(0)]],
    }
}

/// The attention view on reply 1's third token, answered with [`attention_map`].
fn attention_app(theme: &str) -> App {
    let mut app = two_replies();
    send(&mut app, &format!("/theme {theme}"));
    app.update(key(KeyCode::F(6)));
    app.update(key(KeyCode::Up));
    app.update(key(KeyCode::Left));
    let requests = app.update(key(KeyCode::Char('a')));
    let [Request::Attention {
        serial,
        prompt: Prompt::Chat { turns, .. },
        reply,
    }] = requests.as_slice()
    else {
        panic!("expected an attention request, got {requests:?}")
    };
    assert_eq!(turns.len(), 1);
    assert_eq!(
        reply,
        &vec![1, 1, 1],
        "the reply up to the token under the cursor"
    );
    let serial = *serial;
    // An answer to an older request is not shown.
    app.update(Action::Reply(Reply::Attention {
        serial: serial - 1,
        map: Ok(attention_map()),
    }));
    assert!(screen_text(&render(&mut app, 100, 30)).contains("computing"));
    app.update(Action::Reply(Reply::Attention {
        serial,
        map: Ok(attention_map()),
    }));
    app
}

#[test]
fn the_attention_view_moves_between_layers_and_heads() {
    let mut app = attention_app("dark");
    let screen = screen_text(&render(&mut app, 100, 30));
    assert!(
        screen.contains("layer 1/2 · average of 2 heads"),
        "{screen}"
    );
    // The token after the cursor is the masked future.
    assert!(screen.contains("███·"), "{screen}");
    app.update(key(KeyCode::Char(']')));
    app.update(key(KeyCode::Char('>')));
    let screen = screen_text(&render(&mut app, 100, 30));
    assert!(screen.contains("layer 2/2 · head 1/2"), "{screen}");
    assert!(screen.contains("strongest \" to\" 80%"), "{screen}");
    app.update(key(KeyCode::Char('m')));
    assert!(screen_text(&render(&mut app, 100, 30)).contains("average of 2 heads"));
    app.update(key(KeyCode::Char(']')));
    assert!(
        screen_text(&render(&mut app, 100, 30)).contains("layer 1/2"),
        "wraps around"
    );
    // Moving the cursor asks again, for the new token.
    let requests = app.update(key(KeyCode::Left));
    let [Request::Attention { reply, serial, .. }] = requests.as_slice() else {
        panic!("expected an attention request, got {requests:?}")
    };
    assert_eq!(reply.len(), 2);
    app.update(Action::Reply(Reply::Attention {
        serial: *serial,
        map: Err("no model".into()),
    }));
    assert!(screen_text(&render(&mut app, 100, 30)).contains("no model"));
    // Odd answers and tiny terminals draw without a panic.
    for map in [
        AttentionMap {
            tokens: vec![],
            weights: vec![],
        },
        AttentionMap {
            tokens: vec!["a".into(), "b".into()],
            weights: vec![vec![vec![0.5], vec![0.2, 0.3, 0.5]]],
        },
    ] {
        let requests = app.update(key(KeyCode::Right));
        let Some(Request::Attention { serial, .. }) = requests.first() else {
            panic!("expected an attention request, got {requests:?}")
        };
        app.update(Action::Reply(Reply::Attention {
            serial: *serial,
            map: Ok(map),
        }));
        app.update(key(KeyCode::Char('m')));
        for (w, h) in [(100, 30), (20, 5), (3, 2), (0, 0), (61, 9)] {
            render(&mut app, w, h);
        }
        app.update(key(KeyCode::Left));
    }
    app.update(key(KeyCode::Esc));
    assert!(app.inspect.as_ref().unwrap().attention.is_none());
    for (w, h) in [(20, 5), (3, 2), (0, 0), (61, 9)] {
        render(&mut app, w, h);
    }
}

/// The cells of the screen whose symbol is `symbol`, with their colours.
fn cells_with(terminal: &Terminal<TestBackend>, symbol: &str) -> Vec<ratatui::buffer::Cell> {
    terminal
        .backend()
        .buffer()
        .content()
        .iter()
        .filter(|c| c.symbol() == symbol)
        .cloned()
        .collect()
}

#[test]
fn snapshot_each_cursor_view_in_each_theme() {
    let (themes, _) = load_themes(None);
    for name in themes.keys() {
        let mut app = two_replies();
        send(&mut app, &format!("/theme {name}"));
        app.update(key(KeyCode::F(6)));
        app.update(key(KeyCode::Left));
        app.update(key(KeyCode::Enter));
        app.update(key(KeyCode::Down));
        let terminal = render(&mut app, 90, 24);
        // The chosen row and the bars are in this theme's colours.
        let bars = cells_with(&terminal, "█");
        assert!(!bars.is_empty());
        assert!(
            bars.iter()
                .all(|c| app.look.theme.probability.contains(&c.fg)),
            "{name}"
        );
        let marker = &cells_with(&terminal, "▶")[0];
        assert_eq!(
            (marker.fg, marker.bg),
            (app.look.theme.accent, app.look.theme.selection)
        );
        insta::assert_debug_snapshot!(format!("alternatives_{name}"), terminal.backend().buffer());

        let mut app = attention_app(name);
        let terminal = render(&mut app, 90, 24);
        let cells = cells_with(&terminal, "█");
        assert!(
            cells
                .iter()
                .all(|c| app.look.theme.probability.contains(&c.fg)),
            "{name}"
        );
        assert!(
            cells.iter().any(|c| c.fg == app.look.theme.probability[4]),
            "the strongest"
        );
        let masked = cells_with(&terminal, "·");
        assert!(
            masked.iter().any(|c| c.fg == app.look.theme.border),
            "{name}: the future"
        );
        insta::assert_debug_snapshot!(format!("attention_{name}"), terminal.backend().buffer());
    }
}

#[test]
fn snapshot_completion_and_help_in_each_theme() {
    let (themes, _) = load_themes(None);
    for name in themes.keys() {
        let mut app = app();
        send(&mut app, &format!("/theme {name}"));
        send(&mut app, "/mode complete");
        send(&mut app, "Once upon");
        stream(&mut app, &[" a", " time"]);
        finish(&mut app, Some(FinishReason::MaxTokens));
        let terminal = render(&mut app, 70, 12);
        let (x, y) = find(&terminal, "time").unwrap();
        assert_eq!(
            terminal.backend().buffer()[(x, y)].fg,
            app.look.theme.model,
            "{name}"
        );
        insta::assert_debug_snapshot!(format!("completion_{name}"), terminal.backend().buffer());
        app.update(key(KeyCode::F(1)));
        let terminal = render(&mut app, 90, 46);
        let (x, y) = find(&terminal, "F6, /inspect").unwrap();
        assert_eq!(
            terminal.backend().buffer()[(x, y)].fg,
            app.look.theme.accent,
            "{name}"
        );
        insta::assert_debug_snapshot!(format!("help_{name}"), terminal.backend().buffer());
    }
}

/// The app with the fixture's tokenizer, as once the model has loaded.
fn app_with_tokenizer() -> App {
    let mut app = app();
    app.engine.tokenizer = Some(common::load_session("tiny-gpt2").shared_tokenizer());
    app
}

#[test]
fn the_panel_shows_the_logit_bias_once_set_and_it_survives_save_and_load() {
    let mut app = app_with_tokenizer();
    let before = screen_text(&render(&mut app, 90, 20));
    assert!(!before.contains("bias"), "{before}");
    send(&mut app, "/bias \" the\"=-inf");
    send(&mut app, "/bias 50256=1.5");
    assert_eq!(
        app.message.as_deref(),
        Some("logit bias \"<|endoftext|>\"=+1.5")
    );
    let screen = screen_text(&render(&mut app, 90, 20));
    let line = screen
        .lines()
        .find(|l| l.contains("bias \" the\"=-inf"))
        .unwrap_or_else(|| panic!("the bias line in\n{screen}"));
    // Cut at the panel's edge: the panel is 28 columns wide.
    assert!(line.contains("│bias \" the\"=-inf \"<|endof…│"), "{line}");
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("t.json");
    send(&mut app, &format!("/save {}", json.display()));
    let mut other = self::app();
    send(&mut other, &format!("/load {}", json.display()));
    assert_eq!(other.params.logit_bias, app.params.logit_bias);
    assert_eq!(other.params.logit_bias[0].bias, f32::NEG_INFINITY);
}

#[test]
fn x_bans_the_token_under_the_cursor_or_the_alternative_being_chosen() {
    let mut app = two_replies();
    app.update(key(KeyCode::F(6)));
    app.update(key(KeyCode::Char('x')));
    let banned = |id| LogitBias {
        token: BiasToken::Id(id),
        bias: f32::NEG_INFINITY,
    };
    assert_eq!(app.params.logit_bias, vec![banned(1)]);
    assert_eq!(
        app.message.as_deref(),
        Some("banned \" sir\" (1=-inf) · /bias 1=0 lifts it")
    );
    app.update(key(KeyCode::Enter));
    app.update(key(KeyCode::Down));
    let requests = app.update(key(KeyCode::Char('x')));
    assert!(requests.is_empty(), "nothing is being written");
    assert_eq!(app.params.logit_bias, vec![banned(1), banned(100)]);
    assert!(app
        .message
        .as_deref()
        .unwrap()
        .contains("\" alt0\" (100=-inf)"));
    // Banning again keeps one entry per token; while writing, the ban reaches the reply.
    app.update(key(KeyCode::Esc));
    app.update(key(KeyCode::Esc));
    send(&mut app, "More?");
    stream(&mut app, &["Aye"]);
    app.update(key(KeyCode::F(6)));
    let requests = app.update(key(KeyCode::Char('x')));
    assert_eq!(app.params.logit_bias, vec![banned(1), banned(100)]);
    assert!(
        matches!(requests.as_slice(), [Request::SetParams(p)] if p.logit_bias == app.params.logit_bias),
        "{requests:?}"
    );
}

#[test]
fn the_trace_is_recorded_while_the_probabilities_or_the_cursor_are_shown() {
    let mut app = two_replies();
    let asked = |requests: Vec<Request>| {
        requests
            .into_iter()
            .filter(|r| matches!(r, Request::RecordTrace(_)))
            .collect::<Vec<_>>()
    };
    assert!(matches!(
        asked(app.update(key(KeyCode::F(6)))).as_slice(),
        [Request::RecordTrace(true)]
    ));
    assert!(
        asked(app.update(key(KeyCode::Left))).is_empty(),
        "asked once"
    );
    assert!(matches!(
        asked(app.update(key(KeyCode::Esc))).as_slice(),
        [Request::RecordTrace(false)]
    ));
    assert!(matches!(
        asked(app.update(key(KeyCode::F(3)))).as_slice(),
        [Request::RecordTrace(true)]
    ));
    assert!(
        asked(app.update(key(KeyCode::F(6)))).is_empty(),
        "F3 still on"
    );
    assert!(asked(app.update(key(KeyCode::Esc))).is_empty());
    // Asked before the message that starts a reply.
    type_text(&mut app, "/probs");
    let requests = app.update(key(KeyCode::Enter));
    assert!(
        matches!(requests.as_slice(), [Request::RecordTrace(false)]),
        "{requests:?}"
    );
}

/// A hand-made trace for the token with id 1: drawn among two survivors; the others cut by
/// top-p, min-p, the logit bias and top-k.
fn hand_made_trace() -> Trace {
    let row = |id, raw, adjusted, tempered, removed_by, final_prob| TraceRow {
        id,
        raw,
        adjusted,
        tempered,
        removed_by,
        final_prob,
    };
    Trace {
        rows: vec![
            row(100, 0.40, 0.42, 0.45, None, 0.58),
            row(1, 0.30, 0.31, 0.33, None, 0.42),
            row(101, 0.12, 0.13, 0.11, Some(Stage::TopP), 0.0),
            row(102, 0.08, 0.09, 0.07, Some(Stage::MinP), 0.0),
            row(103, 0.05, 0.0, 0.0, Some(Stage::Bias), 0.0),
            row(7, 0.01, 0.01, 0.004, Some(Stage::TopK), 0.0),
        ],
        drawn: 1,
        survivors: 2,
    }
}

/// A reply of three tokens: the first two written with recording off, the last with it on.
fn traced_reply(theme: &str) -> App {
    let mut app = app();
    send(&mut app, &format!("/theme {theme}"));
    send(&mut app, "Speak");
    app.update(Action::Reply(Reply::Started {
        prompt_tokens: 5,
        dropped_turns: 0,
        dropped_tokens: 0,
    }));
    for (i, text) in ["I", " will", " speak"].iter().enumerate() {
        let mut reply = token(1, text.to_string(), (0.3f32).ln(), 6 + i);
        if let Reply::Token {
            trace, top, params, ..
        } = &mut reply
        {
            top.extend([Candidate {
                id: 103,
                text: " never".into(),
                prob: 0.05,
                ends: false,
            }]);
            params.logit_bias = vec!["103=-inf".parse().unwrap()];
            params.top_p = 0.9;
            params.min_p = 0.1;
            if i == 2 {
                *trace = Some(hand_made_trace());
            }
        }
        app.update(Action::Reply(reply));
    }
    finish(&mut app, Some(FinishReason::Eos));
    app
}

#[test]
fn snapshot_the_trace_popup_in_each_theme() {
    let (themes, _) = load_themes(None);
    for name in themes.keys() {
        let mut app = traced_reply(name);
        app.update(key(KeyCode::F(6)));
        app.update(key(KeyCode::Char('t')));
        let terminal = render(&mut app, 90, 24);
        let screen = screen_text(&terminal);
        for want in [
            "trace · token 3/3",
            "bias+rep",
            "cut by",
            "top-p",
            "min-p",
            "top-k",
            "#7",
        ] {
            assert!(screen.contains(want), "{want:?} in\n{screen}");
        }
        assert!(
            screen.contains("● 2 \" speak\"       30.00%   31.00%   33.00%          42.00%"),
            "{screen}"
        );
        assert!(screen.contains("2 survived every stage"), "{screen}");
        assert!(screen.contains("bias 103=-inf"), "{screen}");
        let t = &app.look.theme;
        let marker = &cells_with(&terminal, "●")[0];
        assert_eq!(marker.fg, t.accent, "{name}: the drawn token");
        let (x, y) = find(&terminal, "top-p         ·").unwrap();
        assert_eq!(
            terminal.backend().buffer()[(x, y)].fg,
            t.warning,
            "{name}: the stage that cut"
        );
        insta::assert_debug_snapshot!(format!("trace_{name}"), terminal.backend().buffer());
        // A token written with recording off says so, in one line.
        app.update(key(KeyCode::Left));
        let screen = screen_text(&render(&mut app, 90, 24));
        assert!(
            screen.contains("no trace recorded: turn on F3 or F6 before a reply is written"),
            "{screen}"
        );
        // t again: back to the alternatives.
        app.update(key(KeyCode::Char('t')));
        let screen = screen_text(&render(&mut app, 90, 24));
        assert!(screen.contains("settings at this token:"), "{screen}");
    }
}

/// A chat whose message came back scored (as the engine sends it while F3 or F6 is on): an
/// unscored first token, an unlikely one and a likely one; then a reply.
fn scored_prompt(theme: &str) -> App {
    let mut app = app();
    send(&mut app, &format!("/theme {theme}"));
    app.update(key(KeyCode::F(3)));
    send(&mut app, "Speak softly");
    let candidate = |id: u32, text: &str, prob: f32| Candidate {
        id,
        text: text.into(),
        prob,
        ends: false,
    };
    let score = |prob: f32, rank: usize, top: Vec<Candidate>| PromptScore {
        prob,
        rank,
        entropy: 2.5,
        top,
    };
    let tokens = vec![
        PromptToken {
            id: 1,
            text: "Speak".into(),
            score: None,
        },
        PromptToken {
            id: 2,
            text: " soft".into(),
            score: Some(score(
                0.05,
                4,
                vec![
                    candidate(7, " up", 0.4),
                    candidate(8, " to", 0.3),
                    candidate(9, ",", 0.1),
                    candidate(2, " soft", 0.05),
                ],
            )),
        },
        PromptToken {
            id: 3,
            text: "ly".into(),
            score: Some(score(0.9, 1, vec![candidate(3, "ly", 0.9)])),
        },
    ];
    app.update(Action::Reply(Reply::PromptScored(vec![PromptPart {
        turn: Some(0),
        text: "Speak softly".into(),
        tokens,
    }])));
    stream(&mut app, &["I", " will"]);
    finish(&mut app, Some(FinishReason::Eos));
    app
}

#[test]
fn snapshot_a_coloured_prompt_and_its_cursor_in_each_theme() {
    let (themes, _) = load_themes(None);
    for name in themes.keys() {
        let mut app = scored_prompt(name);
        let terminal = render(&mut app, 90, 24);
        let t = app.look.theme.clone();
        let (x, y) = find(&terminal, "Speak softly").expect("the message");
        let buffer = terminal.backend().buffer();
        assert_eq!(buffer[(x, y)].fg, t.foreground, "{name}: unscored, plain");
        assert_eq!(buffer[(x + 6, y)].fg, t.probability_color(0.05), "{name}");
        assert_eq!(buffer[(x + 10, y)].fg, t.probability_color(0.9), "{name}");
        assert_ne!(t.probability_color(0.05), t.probability_color(0.9));
        insta::assert_debug_snapshot!(format!("prompt_{name}"), buffer);

        // The cursor goes from the reply up onto the message, and left to " soft".
        app.update(key(KeyCode::F(6)));
        app.update(key(KeyCode::Up));
        app.update(key(KeyCode::Left));
        let terminal = render(&mut app, 90, 24);
        let screen = screen_text(&terminal);
        for want in [
            "your text · token 2/3",
            "token \" soft\"",
            "5.00% · rank 4",
            "entropy 2.50 nats · the model expected:",
            "\" up\"",
            "40.00%",
        ] {
            assert!(screen.contains(want), "{want:?} in\n{screen}");
        }
        let (x, y) = find(&terminal, " soft").unwrap();
        assert_eq!(terminal.backend().buffer()[(x, y)].bg, t.accent, "{name}");
        let actual = cells_with(&terminal, "●");
        assert_eq!(
            actual.len(),
            1,
            "the actual token is marked among the expected"
        );
        insta::assert_debug_snapshot!(format!("prompt_cursor_{name}"), terminal.backend().buffer());
    }
}

#[test]
fn the_cursor_on_the_users_text_has_no_draw_and_no_branch() {
    let mut app = scored_prompt("dark");
    app.update(key(KeyCode::F(6)));
    app.update(key(KeyCode::Up));
    let inspect = app.inspect.clone().unwrap();
    assert!(inspect.prompt && inspect.reply == 0 && inspect.token == 2);
    app.update(key(KeyCode::Char('t')));
    let screen = screen_text(&render(&mut app, 90, 24));
    assert!(screen.contains("no draw: this is your text"), "{screen}");
    // Enter does not start choosing: nothing to branch from.
    app.update(key(KeyCode::Enter));
    assert!(app.inspect.as_ref().unwrap().choosing.is_none());
    app.update(key(KeyCode::Home));
    let screen = screen_text(&render(&mut app, 90, 24));
    assert!(
        screen.contains("unscored: nothing before it predicts it"),
        "{screen}"
    );
    // Down goes back to the reply; a changed message drops its stale scores.
    app.update(key(KeyCode::Down));
    assert!(!app.inspect.as_ref().unwrap().prompt);
    app.conversation.turns[0].text = "Speak loudly".into();
    assert!(app.conversation.prompt_tokens(0).is_none());
}
