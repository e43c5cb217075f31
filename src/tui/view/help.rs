//! The help overlay: every key and command, as [`keys::help`] generates the rows from the key
//! table and the commands' table.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};
use ratatui::Frame;
use unicode_width::UnicodeWidthStr;

use super::widgets::border;
use crate::tui::keys;
use crate::tui::state::App;

pub fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let rows = keys::help();
    let t = &app.look.theme;
    let width = area.width.saturating_sub(4).min(80);
    let height = area.height.saturating_sub(2).min(rows.len() as u16 + 2);
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    frame.render_widget(Clear, popup);
    let fits = popup.height.saturating_sub(2) as usize >= rows.len();
    let title = if fits {
        "help · any key closes"
    } else {
        "help · ↑↓ scroll · other keys close"
    };
    let block = border(app, title, true).style(Style::default().bg(t.background));
    let inner = block.inner(popup);
    frame.render_widget(block, popup);
    let key_width = rows.iter().map(|(k, _)| k.width()).max().unwrap_or(0);
    let skip = app
        .overlay
        .help_scroll
        .min(rows.len().saturating_sub(inner.height as usize));
    let lines: Vec<Line> = rows
        .iter()
        .skip(skip)
        .map(|(key, what)| {
            Line::from(vec![
                Span::styled(
                    format!("{key:<key_width$}  "),
                    Style::default().fg(t.accent),
                ),
                Span::styled(what.to_string(), Style::default().fg(t.foreground)),
            ])
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}
