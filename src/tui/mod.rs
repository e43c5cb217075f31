//! The interactive interface: ratatui on crossterm, with inference on its own thread.

pub mod app;
pub mod controls;
pub mod help;
pub mod inspect_mode;
pub mod inspect_view;
pub mod replies;
pub mod theme;
pub mod view;

use std::io::Write;
use std::time::{Duration, Instant};

use crossterm::event::{self, Event, KeyEventKind};
use crossterm::{execute, terminal};
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;

use crate::cli::Cli;
use crate::config::Config;
use crate::engine::chat::ChatFormat;
use crate::engine::{Engine, Reply};
use crate::error::{Error, Result};
use crate::weights::hub::DownloadEvent;
use app::{Action, App, Mode, ModelSummary};

/// Frames for streamed text are drawn at most this often, however fast tokens come.
const FRAME: Duration = Duration::from_millis(33);
/// A key press is drawn at once, unless a frame went out less than this long ago (so holding a
/// key down or typing fast while the model writes cannot flood the terminal).
const INPUT_FRAME: Duration = Duration::from_millis(8);
/// How often the loop looks at the engine's inbox when nothing else wakes it.
const TICK: Duration = Duration::from_millis(20);

/// Puts the terminal back: raw mode off, main screen, mouse and paste reporting off.
fn restore_terminal() {
    let _ = terminal::disable_raw_mode();
    let _ = execute!(
        std::io::stdout(),
        event::DisableBracketedPaste,
        event::DisableMouseCapture,
        terminal::LeaveAlternateScreen,
        crossterm::cursor::Show
    );
}

/// Restores the terminal when dropped, on every way out of `run`, unwinding included.
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

pub fn run(cli: &Cli, config: &Config) -> Result<()> {
    let params = cli.generate.sampling(config);
    params.validate().map_err(Error::Usage)?;
    let model_spec = cli.common.model_spec(config);
    let mode = if config.chat.mode == "complete" {
        Mode::Complete
    } else {
        Mode::Chat
    };
    let format = ChatFormat::choose(&config.chat.format, &model_spec);
    let (themes, problems) =
        theme::load_themes(Config::default_dir().map(|d| d.join("themes")).as_deref());
    let mut app = App::new(
        params,
        mode,
        format,
        config.chat.system.clone(),
        themes,
        &config.ui.theme,
    );
    if !problems.is_empty() {
        app.message = Some(problems.join("; "));
    }

    let common = cli.common.clone();
    let load_config = config.clone();
    let engine = Engine::start(Box::new(move |progress: &dyn Fn(String)| {
        progress(model_spec.clone());
        let mut report = |event: &DownloadEvent| {
            let stage = match event {
                DownloadEvent::Contacting { model } => format!("asking the hub for {model}"),
                DownloadEvent::Start { file, .. } => format!("downloading {file}"),
                DownloadEvent::Progress { file, done, total } => {
                    format!("downloading {file} {}%", done * 100 / (*total).max(1))
                }
                _ => return,
            };
            progress(stage);
        };
        crate::load::load_session_with(&common, &load_config, &mut report)
            .map(|(session, _)| session)
    }));

    // A panic must not leave the terminal in raw mode on the alternate screen. Only the
    // interface thread's panics end the program: the engine thread's are caught there and
    // shown in the status bar, so they print nothing over the screen.
    let previous_hook = std::panic::take_hook();
    let ui_thread = std::thread::current().id();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() == ui_thread {
            restore_terminal();
            previous_hook(info);
        }
    }));
    terminal::enable_raw_mode()
        .map_err(|e| Error::Other(format!("cannot set up the terminal: {e}")))?;
    let _guard = TerminalGuard;
    execute!(
        std::io::stdout(),
        terminal::EnterAlternateScreen,
        event::EnableBracketedPaste,
        event::EnableMouseCapture
    )
    .map_err(|e| Error::Other(format!("cannot set up the terminal: {e}")))?;
    let mut terminal = Terminal::new(CrosstermBackend::new(std::io::stdout()))
        .map_err(|e| Error::Other(format!("cannot set up the terminal: {e}")))?;
    event_loop(&mut terminal, &mut app, &engine)
}

fn event_loop(
    terminal: &mut Terminal<CrosstermBackend<std::io::Stdout>>,
    app: &mut App,
    engine: &Engine,
) -> Result<()> {
    let draw_error = |e: std::io::Error| Error::Other(format!("drawing: {e}"));
    let mut frame_log =
        std::env::var_os("GPT2_TUI_FRAME_LOG").and_then(|p| std::fs::File::create(p).ok());
    // Test hook for the end-to-end test: F12 panics, to check the terminal is restored.
    let panic_key = std::env::var_os("GPT2_TUI_TEST_PANIC_KEY").is_some();
    let mut dirty = true;
    let mut last_draw = Instant::now() - FRAME;
    // The time of the oldest input not yet on screen: drawn sooner, and logged.
    let mut pending_input: Option<Instant> = None;
    let started = Instant::now();
    let send = |app: &mut App, requests: Vec<crate::engine::Request>| {
        for request in requests {
            if !engine.send(request) {
                app.update(Action::EngineGone);
                break;
            }
        }
    };
    while !app.quit {
        while let Ok(reply) = engine.replies.try_recv() {
            let requests = if matches!(reply, Reply::Loaded) {
                match engine.info.get() {
                    Some(info) => {
                        app.tokenizer = Some(info.tokenizer.clone());
                        app.anatomy = Some(info.anatomy.clone());
                        let requests = app.update(Action::Loaded(ModelSummary::from(info)));
                        app.count_input_tokens();
                        requests
                    }
                    None => vec![],
                }
            } else {
                app.update(Action::Reply(reply))
            };
            send(app, requests);
            dirty = true;
        }
        let since = last_draw.elapsed();
        let due = if pending_input.is_some() {
            INPUT_FRAME
        } else {
            FRAME
        };
        if dirty && since >= due {
            let drawing = Instant::now();
            terminal
                .draw(|frame| view::draw(frame, app))
                .map_err(draw_error)?;
            last_draw = Instant::now();
            dirty = false;
            let input_at = pending_input.take();
            if let Some(log) = frame_log.as_mut() {
                // One line per frame: when, how long drawing took, the state, and for a frame
                // that shows a key press, the time from reading the key to the frame's flush.
                let state = if app.is_generating() {
                    "generating"
                } else {
                    "idle"
                };
                let _ = write!(
                    log,
                    "frame_at_ms {:.1} draw_ms {:.2} {state}",
                    started.elapsed().as_secs_f64() * 1e3,
                    drawing.elapsed().as_secs_f64() * 1e3
                );
                if let Some(at) = input_at {
                    let _ = write!(
                        log,
                        " input_to_frame_ms {:.2}",
                        at.elapsed().as_secs_f64() * 1e3
                    );
                }
                let _ = writeln!(log);
            }
        }
        let wait = if dirty {
            due.saturating_sub(last_draw.elapsed()).min(TICK)
        } else {
            TICK
        };
        let read_error = |e: std::io::Error| Error::Other(format!("reading the terminal: {e}"));
        if !event::poll(wait).map_err(read_error)? {
            continue;
        }
        // Take every event that is already there before drawing again: a burst of keys (or a
        // paste without bracketed paste) costs one frame, not one per key.
        loop {
            let action = match event::read().map_err(read_error)? {
                Event::Key(key) if panic_key && key.code == event::KeyCode::F(12) => {
                    panic!("test panic (GPT2_TUI_TEST_PANIC_KEY)")
                }
                Event::Key(key) if key.kind != KeyEventKind::Release => Some(Action::Key(key)),
                Event::Paste(text) => Some(Action::Paste(text)),
                Event::Mouse(mouse) => app::wheel(mouse.kind).map(Action::Scroll),
                Event::Resize(..) => Some(Action::Resize),
                _ => None,
            };
            if let Some(action) = action {
                pending_input.get_or_insert_with(Instant::now);
                let requests = app.update(action);
                send(app, requests);
                dirty = true;
            }
            if app.quit || !event::poll(Duration::ZERO).map_err(read_error)? {
                break;
            }
        }
    }
    Ok(())
}
