//! Text helpers shared by every pane: word wrapping and wrapping of styled segments.

use ratatui::style::Style;
use ratatui::text::{Line, Span};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// Word-wraps `text` into lines of at most `width` columns (long words are cut). Linear in the
/// text's length: it runs over the whole conversation on every frame.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut out = Vec::new();
    for paragraph in text.split('\n') {
        let mut line = String::new();
        let mut used = 0;
        for word in paragraph.split_inclusive(' ') {
            if used + word.trim_end().width() > width && !line.is_empty() {
                out.push(std::mem::take(&mut line));
                used = 0;
            }
            for c in word.chars() {
                let w = c.width().unwrap_or(0);
                if used + w > width {
                    out.push(std::mem::take(&mut line));
                    used = 0;
                    if c == ' ' {
                        // A space that falls at a line break is the break itself.
                        continue;
                    }
                }
                line.push(c);
                used += w;
            }
        }
        out.push(line);
    }
    out
}

/// Wraps styled text at `width` columns, breaking anywhere (token colouring has no word view).
pub fn wrap_segments(segments: &[(String, Style)], width: usize) -> Vec<Line<'static>> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut line: Vec<Span<'static>> = Vec::new();
    let mut used = 0;
    for (text, style) in segments {
        let mut current = String::new();
        for c in text.chars() {
            // A lone control character measures 1 as a string, `None` as a char.
            let w = c.width().unwrap_or(1);
            if c == '\n' || used + w > width {
                if !current.is_empty() {
                    line.push(Span::styled(std::mem::take(&mut current), *style));
                }
                lines.push(Line::from(std::mem::take(&mut line)));
                used = 0;
                if c == '\n' {
                    continue;
                }
            }
            current.push(c);
            used += w;
        }
        if !current.is_empty() {
            line.push(Span::styled(current, *style));
        }
    }
    lines.push(Line::from(line));
    lines
}

/// A token's text as it is shown in lists: quoted, with line breaks and tabs escaped.
pub fn quoted(text: &str) -> String {
    format!("{text:?}")
}

/// Cuts `text` to `width` columns, marking the cut.
pub fn clip(text: &str, width: usize) -> String {
    if text.width() <= width {
        return text.to_string();
    }
    let mut out = String::new();
    for c in text.chars() {
        if out.width() + 2 > width {
            break;
        }
        out.push(c);
    }
    out + "…"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_breaks_at_spaces_and_cuts_long_words() {
        assert_eq!(wrap("hello there world", 11), vec!["hello there", "world"]);
        assert_eq!(wrap("abcdefgh", 3), vec!["abc", "def", "gh"]);
        assert_eq!(wrap("a\n\nb", 5), vec!["a", "", "b"]);
    }
}
