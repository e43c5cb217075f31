//! Ctrl+R: searching the input's history as a shell does. Typing narrows the search, Ctrl+R
//! again finds the next older match, Enter keeps the match in the input, Esc puts back what was
//! there. While searching, the input shows the match and the status bar the query.

use super::Input;

/// A search under way.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistorySearch {
    pub query: String,
    /// The history entry shown, when one matches.
    pub found: Option<usize>,
    /// The input before the search, for Esc.
    before: String,
}

impl Input {
    pub fn is_searching(&self) -> bool {
        self.search.is_some()
    }

    /// Ctrl+R: starts a search, or looks for an older match of the same query.
    pub fn search_older(&mut self) {
        let from = match &self.search {
            None => {
                self.search = Some(HistorySearch {
                    before: self.text.clone(),
                    ..HistorySearch::default()
                });
                self.history.len()
            }
            Some(search) => search.found.unwrap_or(self.history.len()),
        };
        self.find_from(from);
    }

    /// A character typed, or removed (`None`), while searching: the newest match of the query.
    pub fn edit_search(&mut self, c: Option<char>) {
        let Some(search) = self.search.as_mut() else {
            return;
        };
        match c {
            Some(c) => search.query.push(c),
            None => {
                search.query.pop();
            }
        }
        search.found = None;
        self.find_from(self.history.len());
    }

    /// The newest entry before index `before` that holds the query; none found keeps the last
    /// match shown.
    fn find_from(&mut self, before: usize) {
        let Some(search) = self.search.as_mut() else {
            return;
        };
        let found = self.history[..before.min(self.history.len())]
            .iter()
            .rposition(|line| line.contains(&search.query));
        if let Some(i) = found {
            search.found = Some(i);
            let text = self.history[i].clone();
            self.set(text);
        } else if search.query.is_empty() {
            search.found = None;
        }
    }

    /// Enter: the match stays in the input (to send or edit).
    pub fn accept_search(&mut self) {
        self.search = None;
    }

    /// Esc: the input as it was before the search.
    pub fn cancel_search(&mut self) {
        if let Some(search) = self.search.take() {
            self.set(search.before);
        }
    }

    /// The status bar's line while searching.
    pub fn search_line(&self) -> Option<String> {
        let search = self.search.as_ref()?;
        let state = match search.found {
            Some(_) => "",
            None if search.query.is_empty() => "",
            None => " (no match)",
        };
        Some(format!(
            "search: {}{state} · Ctrl+R older · Enter takes it · Esc cancels",
            search.query
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_history(lines: &[&str]) -> Input {
        let mut input = Input::default();
        for line in lines {
            input.set(line.to_string());
            input.take();
        }
        input
    }

    #[test]
    fn typing_narrows_ctrl_r_goes_older_enter_keeps_esc_restores() {
        let mut input = with_history(&["tell me a story", "what is rain", "a story about rain"]);
        input.set("draft".into());
        input.search_older();
        for c in "story".chars() {
            input.edit_search(Some(c));
        }
        assert_eq!(input.text, "a story about rain");
        input.search_older();
        assert_eq!(input.text, "tell me a story");
        input.search_older();
        assert_eq!(input.text, "tell me a story", "no older match: stays");
        input.edit_search(Some('x'));
        assert!(input.search_line().unwrap().contains("no match"));
        input.cancel_search();
        assert_eq!(input.text, "draft");
        assert!(!input.is_searching());
        input.search_older();
        input.edit_search(Some('w'));
        input.edit_search(Some('h'));
        input.accept_search();
        assert_eq!(input.text, "what is rain");
        assert!(!input.is_searching());
    }
}
