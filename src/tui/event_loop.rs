//! The event loop: engine replies and terminal events become actions for the state; frames are
//! drawn at a bounded rate, each handing its layout back to the state.

use std::io::Write;
use std::time::{Duration, Instant};

use crossterm::event::{self, Event, KeyEventKind};
use ratatui::Terminal;

use super::state::{self, Action, App, Effect, ModelSummary};
use super::terminal::{self, Backend};
use super::view::{self, Screen};
use super::{clipboard, editor};
use crate::engine::{Engine, Reply};
use crate::error::{Error, Result};

/// Frames for streamed text are drawn at most this often, however fast tokens come.
const FRAME: Duration = Duration::from_millis(33);
/// A key press is drawn at once, unless a frame went out less than this long ago (so holding a
/// key down or typing fast while the model writes cannot flood the terminal).
const INPUT_FRAME: Duration = Duration::from_millis(8);
/// How often the loop looks at the engine's inbox when nothing else wakes it.
const TICK: Duration = Duration::from_millis(20);

pub fn run(terminal: &mut Terminal<Backend>, app: &mut App, engine: &Engine) -> Result<()> {
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
    let mut screen = Screen::default();
    let send = |app: &mut App, requests: Vec<crate::engine::Request>| {
        for request in requests {
            if !engine.send(request) {
                app.update(Action::EngineGone);
                break;
            }
        }
    };
    while !app.quit {
        if !app.effects.is_empty() {
            carry_out(terminal, app)?;
            dirty = true;
        }
        while let Ok(reply) = engine.replies.try_recv() {
            let requests = if matches!(reply, Reply::Loaded) {
                match engine.info.get() {
                    Some(info) => {
                        app.engine.tokenizer = Some(info.tokenizer.clone());
                        app.engine.anatomy = Some(info.anatomy.clone());
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
                .draw(|frame| view::draw(frame, app, &mut screen))
                .map_err(draw_error)?;
            app.update(Action::Drawn(screen.layout()));
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
                Event::Mouse(mouse) => state::wheel(mouse.kind).map(Action::Scroll),
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
    // What the last second of a reply added, when quitting while it is written.
    app.save_session_now();
    Ok(())
}

/// Does what the state asked beyond the screen: the clipboard escape, the editor (with the
/// terminal out of the interface's modes while it runs, and back in them whatever it did).
fn carry_out(terminal: &mut Terminal<Backend>, app: &mut App) -> Result<()> {
    for effect in std::mem::take(&mut app.effects) {
        match effect {
            Effect::Copy(text) => {
                if let Err(e) = clipboard::copy(&mut std::io::stdout(), &text) {
                    app.message = Some(format!("cannot write to the terminal: {e}"));
                }
            }
            Effect::Edit(text) => {
                terminal::suspend();
                let edited = editor::edit_with(&editor::editor_command(), &text);
                terminal::resume(terminal)?;
                app.update(Action::Edited(edited));
            }
        }
    }
    Ok(())
}
