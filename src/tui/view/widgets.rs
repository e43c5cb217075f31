//! Frames and placement shared by panes and popups.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::Span;
use ratatui::widgets::{Block, Borders};

use crate::tui::state::App;

/// A bordered block with a title, in the accent colour when focused.
pub fn border(app: &App, title: &str, focused: bool) -> Block<'static> {
    let t = &app.look.theme;
    Block::default()
        .borders(Borders::ALL)
        .border_style(Style::default().fg(if focused { t.accent } else { t.border }))
        .title(Span::styled(
            format!(" {title} "),
            Style::default().fg(t.muted),
        ))
}

/// A rectangle of at most `width` × `height` centred in `area`, a cell from its edges.
pub fn popup_area(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width.saturating_sub(2));
    let height = height.min(area.height.saturating_sub(2));
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

/// A rectangle of at most `width` × `height` in the bottom right corner of `area`.
pub fn bottom_right(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect {
        x: area.x + area.width - width,
        y: area.y + area.height - height,
        width,
        height,
    }
}
