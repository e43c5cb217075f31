//! The popups over the panes: the help (scrollable), the model's anatomy and the sessions
//! picker.

use super::SessionPicker;
use crate::tui::keys::{self, KeyAction};

/// The popups that take every key while open.
#[derive(Debug, Default)]
pub struct Overlay {
    pub show_help: bool,
    /// Lines the help overlay is scrolled down (it can be taller than a small terminal).
    pub help_scroll: usize,
    pub show_anatomy: bool,
    /// The `/sessions` picker, while open.
    pub sessions: Option<SessionPicker>,
}

impl Overlay {
    /// A key while the help is open: Up/Down/PgUp/PgDn scroll it; any other key closes it.
    pub fn on_help_key(&mut self, action: Option<KeyAction>) {
        let max = keys::help().len().saturating_sub(1);
        match action {
            Some(KeyAction::HelpUp) => self.help_scroll = self.help_scroll.saturating_sub(1),
            Some(KeyAction::HelpDown) => self.help_scroll = (self.help_scroll + 1).min(max),
            Some(KeyAction::HelpPageUp) => self.help_scroll = self.help_scroll.saturating_sub(10),
            Some(KeyAction::HelpPageDown) => self.help_scroll = (self.help_scroll + 10).min(max),
            _ => {
                self.show_help = false;
                self.help_scroll = 0;
            }
        }
    }
}
