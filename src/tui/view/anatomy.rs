//! The model anatomy popup: where the parameters sit.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};
use ratatui::Frame;

use super::widgets::{border, popup_area};
use crate::tui::state::App;

pub fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let t = &app.look.theme;
    let Some(anatomy) = &app.engine.anatomy else {
        return;
    };
    let summary = anatomy.summary();
    let popup = popup_area(area, 72, summary.len() as u16 + 5);
    frame.render_widget(Clear, popup);
    let block = border(app, "model anatomy · any key closes", true)
        .style(Style::default().bg(t.background));
    let inner = block.inner(popup);
    frame.render_widget(block, popup);
    let bar_width = 20usize;
    let mut lines: Vec<Line> = summary
        .iter()
        .map(|part| {
            let share = part.parameters as f64 / anatomy.total.max(1) as f64;
            let filled = (share * bar_width as f64).round() as usize;
            Line::from(vec![
                Span::styled(
                    format!("{:>12} ", part.parameters),
                    Style::default().fg(t.foreground),
                ),
                Span::styled("█".repeat(filled), Style::default().fg(t.accent)),
                Span::styled(
                    "·".repeat(bar_width - filled.min(bar_width)),
                    Style::default().fg(t.border),
                ),
                Span::styled(
                    format!(" {:>5.1}% {}", share * 100.0, part.name),
                    Style::default().fg(t.foreground),
                ),
            ])
        })
        .collect();
    let dtype_bytes = match app.engine.model.as_ref().map(|m| m.dtype.as_str()) {
        Some("f16") | Some("bf16") => 2,
        _ => 4,
    };
    lines.push(Line::styled(
        format!(
            "{:>12} total, {:.1} MB at {} bytes each",
            anatomy.total,
            (anatomy.total * dtype_bytes) as f64 / 1e6,
            dtype_bytes
        ),
        Style::default().fg(t.muted),
    ));
    frame.render_widget(Paragraph::new(lines), inner);
}
