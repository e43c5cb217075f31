//! The `/sessions` picker: one row per saved conversation (when, model, turns, title), the
//! selected one highlighted (or asking whether to delete it), and the unreadable files below.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::widgets::{Clear, Paragraph};
use ratatui::Frame;

use super::text::clip;
use super::widgets::{border, popup_area};
use crate::sessions::shown_time;
use crate::tui::state::{App, SessionPicker};

/// Unreadable files named in the picker (the count says how many there are in all).
const SHOWN_PROBLEMS: usize = 2;

pub fn draw(frame: &mut Frame, app: &App, picker: &SessionPicker, area: Rect) {
    let t = &app.look.theme;
    let problem_rows = match picker.problems.len() {
        0 => 0,
        n => 1 + n.min(SHOWN_PROBLEMS),
    };
    let popup = popup_area(area, 96, (picker.list.len() + problem_rows) as u16 + 2);
    frame.render_widget(Clear, popup);
    let title = format!(
        "sessions ({}) · ↑↓ · Enter opens · d deletes · Esc",
        picker.list.len()
    );
    let block = border(app, &title, true).style(Style::default().bg(t.background));
    let inner = block.inner(popup);
    frame.render_widget(block, popup);
    let width = inner.width as usize;
    let plain = Style::default().fg(t.foreground);
    let selected = Style::default().fg(t.accent).bg(t.selection);
    let mut lines: Vec<Line> = picker
        .list
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let here = if s.id == app.sessions.id {
                " (this one)"
            } else {
                ""
            };
            let text = if i == picker.selected && picker.confirm_delete {
                format!(
                    "delete {} ({})? y deletes it, any other key keeps it",
                    s.id, s.title
                )
            } else {
                let turns = if s.turns == 1 { "turn" } else { "turns" };
                format!(
                    "{}  {}  {}  {} {turns}  {}{here}",
                    s.id,
                    shown_time(s.updated),
                    s.model,
                    s.turns,
                    s.title
                )
            };
            let style = if i == picker.selected {
                selected
            } else {
                plain
            };
            Line::styled(clip(&text, width), style)
        })
        .collect();
    // Where the list scrolls to: the selected row stays in view above the problems.
    let list_height = (inner.height as usize).saturating_sub(problem_rows).max(1);
    let skip = (picker.selected + 1).saturating_sub(list_height);
    lines.truncate(skip + list_height);
    lines.drain(..skip.min(lines.len()));
    if !picker.problems.is_empty() {
        lines.push(Line::styled(
            format!("{} could not be read:", picker.problems.len()),
            Style::default().fg(t.warning),
        ));
        // The folder is the same for all: the file's name says which.
        for problem in picker.problems.iter().take(SHOWN_PROBLEMS) {
            let name = problem
                .file
                .file_name()
                .unwrap_or_default()
                .to_string_lossy();
            lines.push(Line::styled(
                clip(&format!("{name}: {}", problem.error), width),
                Style::default().fg(t.warning),
            ));
        }
    }
    frame.render_widget(Paragraph::new(lines), inner);
}
