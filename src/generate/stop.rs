//! Stop sequences, matched on the text stream whatever the token boundaries.

/// Holds back text that could still become a stop sequence, and reports a match.
#[derive(Debug, Clone, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    held: String,
    /// Bytes at the start of `held` that were already shown (see [`StopMatcher::prime`]).
    shown: usize,
}

/// What the matcher lets through for one piece of text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopOutput {
    /// Text safe to print now.
    pub text: String,
    /// A stop sequence was found; `text` ends just before it.
    pub stopped: bool,
}

impl StopMatcher {
    pub fn new(stops: impl IntoIterator<Item = String>) -> Self {
        Self {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            held: String::new(),
            shown: 0,
        }
    }

    /// Starts the stream after `text`, which was already shown (the kept part of a reply that
    /// is being continued): a stop sequence that begins in it and ends in what follows is still
    /// found, and none of it is released again.
    pub fn prime(&mut self, text: &str) {
        self.held.push_str(text);
        let keep = self.longest_partial_match();
        self.held.drain(..self.held.len() - keep);
        self.shown = self.held.len();
    }

    pub fn push(&mut self, text: &str) -> StopOutput {
        let mut out = self.push_unprimed(text);
        let already = self.shown.min(out.text.len());
        out.text.drain(..already);
        self.shown = if out.stopped { 0 } else { self.shown - already };
        out
    }

    fn push_unprimed(&mut self, text: &str) -> StopOutput {
        self.held.push_str(text);
        if let Some(at) = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min()
        {
            let text = self.held[..at].to_string();
            self.held.clear();
            return StopOutput {
                text,
                stopped: true,
            };
        }
        let keep = self.longest_partial_match();
        let text = self.held[..self.held.len() - keep].to_string();
        self.held.drain(..self.held.len() - keep);
        StopOutput {
            text,
            stopped: false,
        }
    }

    /// Releases held text when the stream ends without a match.
    pub fn finish(&mut self) -> String {
        let mut text = std::mem::take(&mut self.held);
        text.drain(..std::mem::take(&mut self.shown));
        text
    }

    /// Length of the longest suffix of the held text that is a proper prefix of a stop sequence.
    fn longest_partial_match(&self) -> usize {
        let held = self.held.as_str();
        self.stops
            .iter()
            .flat_map(|stop| {
                (1..stop.len().min(held.len() + 1))
                    .rev()
                    .filter(|&n| stop.is_char_boundary(n) && held.ends_with(&stop[..n]))
                    .take(1)
            })
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let mut m = StopMatcher::new(stops.iter().map(|s| s.to_string()));
        let mut out = String::new();
        for piece in pieces {
            let o = m.push(piece);
            out += &o.text;
            if o.stopped {
                return (out, true);
            }
        }
        out += &m.finish();
        (out, false)
    }

    #[test]
    fn matches_across_pieces_and_drops_the_stop_text() {
        assert_eq!(
            run(&["User:"], &["Hi there\nUs", "er", ": more"]),
            ("Hi there\n".into(), true)
        );
    }

    #[test]
    fn releases_held_text_that_turned_out_not_to_match() {
        let mut m = StopMatcher::new(["END".to_string()]);
        assert_eq!(m.push("the E").text, "the ");
        assert_eq!(m.push("x").text, "Ex");
    }

    #[test]
    fn earliest_of_several_stops_wins() {
        assert_eq!(run(&["bb", "a"], &["xxbba"]), ("xx".into(), true));
    }

    #[test]
    fn no_stop_passes_everything() {
        assert_eq!(run(&[], &["a", "b"]), ("ab".into(), false));
        assert_eq!(run(&["zz"], &["a", "z"]), ("az".into(), false));
    }

    #[test]
    fn multibyte_stop_sequences() {
        assert_eq!(
            run(&["→ end"], &["go →", " en", "d!"]),
            ("go ".into(), true)
        );
    }

    #[test]
    fn a_primed_stream_finds_a_stop_begun_in_the_shown_text_and_repeats_none_of_it() {
        let mut m = StopMatcher::new(["\nUser:".to_string()]);
        m.prime("Aye, my lord.\n");
        assert_eq!(m.push("Us").text, "");
        let out = m.push("er: hello");
        assert_eq!((out.text.as_str(), out.stopped), ("", true));

        let mut m = StopMatcher::new(["\nUser:".to_string()]);
        m.prime("Aye.\nUs");
        let out = m.push("ual things");
        assert_eq!((out.text.as_str(), out.stopped), ("ual things", false));
        assert_eq!(m.finish(), "");

        let mut m = StopMatcher::new(["\nUser:".to_string()]);
        m.prime("Aye.\n");
        assert_eq!(m.push("U").text, "");
        assert_eq!(m.finish(), "U");
    }
}
