//! The input box: the text being written (or its tokens) and the cursor.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;
use unicode_width::UnicodeWidthStr;

use super::widgets::border;
use crate::tui::state::{App, Focus, Mode};

/// The input split into its tokens, on alternating backgrounds, with ids when asked.
fn token_lines(app: &App) -> Option<Vec<Line<'static>>> {
    app.engine
        .tokenizer
        .as_ref()
        .filter(|_| app.input.token_view > 0)?;
    let rows = &app.input.rows;
    let t = &app.look.theme;
    let shades = [
        Style::default().bg(t.selection).fg(t.foreground),
        Style::default().bg(t.border).fg(t.foreground),
    ];
    let spans: Vec<Span<'static>> = rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let text = row.text.replace('\n', "⏎");
            let text = if app.input.token_view == 2 {
                format!("{text}·{}", row.id)
            } else {
                text
            };
            Span::styled(text, shades[i % 2])
        })
        .collect();
    Some(vec![Line::from(spans)])
}

pub fn draw(frame: &mut Frame, app: &App, area: Rect) {
    // The long title, else the short one, whichever fits beside the token count; the count
    // goes when even the short title leaves it no room.
    let (long, short) = match (app.conversation.mode, app.is_generating()) {
        _ if app.inspect.is_some() => super::inspect::hints(app),
        (_, true) => ("writing… Esc stops", "writing…"),
        (Mode::Chat, false) => ("message · Enter sends · Alt+Enter new line", "message"),
        (Mode::Complete, false) => ("text to add · Enter continues", "text to add"),
    };
    let count = app
        .engine
        .model
        .as_ref()
        .map(|m| format!(" {} tokens · window {} ", app.input.tokens, m.window));
    let room = |title: &str, count: &str| title.width() + count.width() + 5 <= area.width as usize;
    let count_width = count.as_deref().unwrap_or("");
    let (title, count) = if room(long, count_width) {
        (long, count)
    } else if room(short, count_width) {
        (short, count)
    } else {
        (short, None)
    };
    let mut block = border(app, title, app.panes.focus == Focus::Input);
    if let Some(count) = count {
        block = block
            .title(Line::styled(count, Style::default().fg(app.look.theme.muted)).right_aligned());
    }
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if let Some(lines) = token_lines(app) {
        frame.render_widget(
            Paragraph::new(lines).wrap(ratatui::widgets::Wrap { trim: false }),
            inner,
        );
        return;
    }
    let t = &app.look.theme;
    let lines: Vec<Line> = app
        .input
        .text
        .split('\n')
        .map(|l| Line::styled(l.to_string(), Style::default().fg(t.foreground)))
        .collect();
    let before_cursor = &app.input.text[..app.input.cursor];
    let row = before_cursor.matches('\n').count();
    let col = before_cursor.rsplit('\n').next().unwrap_or("").width();
    let skip = (row + 1).saturating_sub(inner.height as usize);
    frame.render_widget(
        Paragraph::new(lines[skip.min(lines.len())..].to_vec()),
        inner,
    );
    if app.panes.focus == Focus::Input && inner.width > 0 && inner.height > 0 {
        let x = inner.x + (col as u16).min(inner.width - 1);
        let y = inner.y + ((row - skip) as u16).min(inner.height - 1);
        frame.set_cursor_position((x, y));
    }
}
