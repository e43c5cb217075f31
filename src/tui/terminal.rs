//! The terminal's lifetime: raw mode, the alternate screen, mouse and paste reporting, all
//! undone when [`Tui`] is dropped (unwinding included) or when the interface thread panics.

use crossterm::{event, execute, terminal};
use ratatui::backend::CrosstermBackend;

use crate::error::{Error, Result};

pub type Backend = CrosstermBackend<std::io::Stdout>;

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

/// The terminal in the interface's modes; restored when dropped, on every way out of `run`.
pub struct Tui {
    pub terminal: ratatui::Terminal<Backend>,
    /// Dropped after `terminal` (fields drop in order), as the guard always was.
    _restore: Restore,
}

impl Tui {
    /// Installs the panic hook, then sets the terminal up.
    pub fn enter() -> Result<Self> {
        install_panic_hook();
        let setup = |e: std::io::Error| Error::Other(format!("cannot set up the terminal: {e}"));
        terminal::enable_raw_mode().map_err(setup)?;
        // From here on, dropping `guard` (an error below included) restores the terminal.
        let guard = Restore;
        execute!(
            std::io::stdout(),
            terminal::EnterAlternateScreen,
            event::EnableBracketedPaste,
            event::EnableMouseCapture
        )
        .map_err(setup)?;
        let terminal =
            ratatui::Terminal::new(CrosstermBackend::new(std::io::stdout())).map_err(setup)?;
        Ok(Self {
            terminal,
            _restore: guard,
        })
    }
}

/// Leaves the interface's modes for a program that wants the terminal (the editor); undone by
/// [`resume`].
pub fn suspend() {
    restore_terminal();
}

/// Back to the interface's modes after [`suspend`]; the next frame redraws everything.
pub fn resume(terminal: &mut ratatui::Terminal<Backend>) -> Result<()> {
    let setup = |e: std::io::Error| Error::Other(format!("cannot restore the terminal: {e}"));
    terminal::enable_raw_mode().map_err(setup)?;
    execute!(
        std::io::stdout(),
        terminal::EnterAlternateScreen,
        event::EnableBracketedPaste,
        event::EnableMouseCapture
    )
    .map_err(setup)?;
    terminal.clear().map_err(setup)
}

/// Restores the terminal when dropped: when setting it up fails half way, or with [`Tui`].
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// A panic must not leave the terminal in raw mode on the alternate screen. Only the interface
/// thread's panics end the program: the engine thread's are caught there and shown in the
/// status bar, so they print nothing over the screen.
fn install_panic_hook() {
    let previous_hook = std::panic::take_hook();
    let ui_thread = std::thread::current().id();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() == ui_thread {
            restore_terminal();
            previous_hook(info);
        }
    }));
}
