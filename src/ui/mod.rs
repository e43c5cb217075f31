//! The interactive interface: ratatui on crossterm, with inference on its own thread.

pub mod app;
pub mod controls;
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
use crate::conversation::ChatFormat;
use crate::error::{Error, Result};
use crate::inference::{Engine, Reply};
use crate::model::hub::DownloadEvent;
use app::{Action, App, Mode, ModelSummary};

/// Frames are drawn at most this often, however fast tokens come.
const FRAME: Duration = Duration::from_millis(33);

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
        crate::commands::load_session_with(&common, &load_config, &mut report)
            .map(|(session, _)| session)
    }));

    // A panic must not leave the terminal in raw mode on the alternate screen.
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        previous_hook(info);
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
    let mut dirty = true;
    let mut last_draw = Instant::now() - FRAME;
    // The time of the oldest input not yet on screen, for the frame log.
    let mut pending_input: Option<Instant> = None;
    let started = Instant::now();
    while !app.quit {
        while let Ok(reply) = engine.replies.try_recv() {
            if matches!(reply, Reply::Loaded) {
                if let Some(info) = engine.info.get() {
                    app.tokenizer = Some(info.tokenizer.clone());
                    app.anatomy = Some(info.anatomy.clone());
                    app.update(Action::Loaded(ModelSummary::from(info)));
                    app.count_input_tokens();
                }
            } else {
                app.update(Action::Reply(reply));
            }
            dirty = true;
        }
        if dirty && last_draw.elapsed() >= FRAME {
            terminal
                .draw(|frame| view::draw(frame, app))
                .map_err(draw_error)?;
            last_draw = Instant::now();
            dirty = false;
            if let (Some(log), Some(since)) = (frame_log.as_mut(), pending_input.take()) {
                let _ = writeln!(
                    log,
                    "input_to_frame_ms {:.2}",
                    since.elapsed().as_secs_f64() * 1e3
                );
            }
            if let Some(log) = frame_log.as_mut() {
                let state = if app.is_generating() {
                    "generating"
                } else {
                    "idle"
                };
                let _ = writeln!(
                    log,
                    "frame_at_ms {:.1} {state}",
                    started.elapsed().as_secs_f64() * 1e3
                );
            }
        }
        let wait = if dirty {
            FRAME.saturating_sub(last_draw.elapsed())
        } else {
            Duration::from_millis(20)
        };
        if !event::poll(wait).map_err(|e| Error::Other(format!("reading the terminal: {e}")))? {
            continue;
        }
        let action =
            match event::read().map_err(|e| Error::Other(format!("reading the terminal: {e}")))? {
                Event::Key(key) if key.kind != KeyEventKind::Release => Some(Action::Key(key)),
                Event::Paste(text) => Some(Action::Paste(text)),
                Event::Mouse(mouse) => app::wheel(mouse.kind).map(Action::Scroll),
                Event::Resize(..) => {
                    dirty = true;
                    None
                }
                _ => None,
            };
        if let Some(action) = action {
            pending_input.get_or_insert_with(Instant::now);
            for request in app.update(action) {
                engine.send(request);
            }
            dirty = true;
        }
    }
    Ok(())
}
