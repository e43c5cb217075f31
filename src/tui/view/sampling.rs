//! The sampling panel: each control and its value.

use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;
use unicode_width::UnicodeWidthStr;

use super::text::clip;
use super::widgets::border;
use crate::tui::controls::{self, CONTROLS};
use crate::tui::state::{App, Focus};

pub fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let t = &app.look.theme;
    let focused = app.panes.focus == Focus::Panel;
    let block = border(app, "sampling · Tab", focused);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let mut lines = Vec::new();
    for (i, control) in CONTROLS.iter().enumerate() {
        let selected = focused && i == app.panes.selected;
        let style = if selected {
            Style::default()
                .bg(t.selection)
                .fg(t.accent)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::default().fg(t.foreground)
        };
        let value = control.show(&app.params);
        let label = control.label();
        let pad = (inner.width as usize).saturating_sub(label.width() + value.width() + 1);
        lines.push(Line::styled(
            format!("{label}{} {value}", " ".repeat(pad)),
            style,
        ));
    }
    if !app.params.logit_bias.is_empty() {
        // Compact: the tokens and their biases on one line, cut at the panel's edge.
        let biases = controls::show_biases(&app.params, app.engine.tokenizer.as_deref());
        let room = (inner.width as usize).saturating_sub(5);
        lines.push(Line::from(vec![
            Span::styled("bias ", Style::default().fg(t.muted)),
            Span::styled(clip(&biases, room), Style::default().fg(t.foreground)),
        ]));
    }
    lines.push(Line::default());
    let hint = if focused {
        "↑↓ choose  ←→ change"
    } else {
        "Tab to adjust"
    };
    lines.push(Line::styled(hint, Style::default().fg(t.muted)));
    frame.render_widget(Paragraph::new(lines), inner);
}
