//! How text is drawn: the themes there are, the one in use, and the probability colours.

use std::collections::BTreeMap;

use crate::tui::theme::Theme;

/// The themes, the one in use, and whether tokens are coloured by their probability.
#[derive(Debug)]
pub struct Look {
    pub themes: BTreeMap<String, Theme>,
    pub theme: Theme,
    /// Colour generated tokens by the probability they were drawn with.
    pub show_probs: bool,
}

impl Look {
    /// Starts with the theme called `name`; when there is none, the default and a message
    /// saying so.
    pub fn new(themes: BTreeMap<String, Theme>, name: &str) -> (Self, Option<String>) {
        let (theme, message) = match themes.get(name) {
            Some(t) => (t.clone(), None),
            None => (
                Theme::default_theme(),
                Some(format!("no theme named \"{name}\"; using dark")),
            ),
        };
        let look = Self {
            themes,
            theme,
            show_probs: false,
        };
        (look, message)
    }

    /// Changes to the next theme by name, wrapping around; returns its name.
    pub fn next_theme(&mut self) -> String {
        let names: Vec<&String> = self.themes.keys().collect();
        let at = names
            .iter()
            .position(|n| **n == self.theme.name)
            .unwrap_or(0);
        let next = names[(at + 1) % names.len()].clone();
        self.theme = self.themes[&next].clone();
        next
    }

    /// Changes to the theme called `name`, or says which there are.
    pub fn set_theme(&mut self, name: &str) -> Result<(), String> {
        match self.themes.get(name) {
            Some(theme) => {
                self.theme = theme.clone();
                Ok(())
            }
            None => Err(format!(
                "no theme \"{name}\" (have: {})",
                self.themes.keys().cloned().collect::<Vec<_>>().join(", ")
            )),
        }
    }

    /// Turns the probability colours on or off; returns whether they are on.
    pub fn toggle_probs(&mut self) -> bool {
        self.show_probs = !self.show_probs;
        self.show_probs
    }
}
