//! The status bar: model, state, speed, context and notices, the least important dropped first.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::tui::state::{App, EngineState};

pub fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let t = &app.look.theme;
    let warn = Style::default().fg(t.warning);
    // Each item with how much it matters: when the bar is too narrow, the least important go
    // first, so the state, the context and any notice stay in view.
    let mut items: Vec<(u8, Span<'static>)> = Vec::new();
    match &app.engine.model {
        Some(m) => {
            items.push((
                2,
                Span::styled(
                    format!("{} {}", m.name, human_count(m.parameters)),
                    Style::default().fg(t.accent),
                ),
            ));
            items.push((1, Span::raw(format!("{} {}", m.device, m.dtype))));
        }
        None => items.push((2, Span::styled("gpt2-tui", Style::default().fg(t.accent)))),
    }
    let state = match &app.engine.state {
        EngineState::Loading(stage) => Span::raw(format!("loading: {stage}")),
        EngineState::Idle => Span::raw("idle"),
        EngineState::Generating => Span::raw("generating"),
        EngineState::Failed(_) => Span::styled("failed", warn),
    };
    items.push((9, state));
    items.push((3, Span::raw(format!("{:.1} tok/s", app.stats.tokens_per_s))));
    if let Some(m) = &app.engine.model {
        let share = app.stats.context_used as f64 / m.window.max(1) as f64;
        let color = if share > 0.9 { t.warning } else { t.foreground };
        items.push((
            4,
            Span::styled(
                format!("ctx {}/{}", app.stats.context_used, m.window),
                Style::default().fg(color),
            ),
        ));
    }
    if app.stats.dropped_turns > 0 {
        let s = if app.stats.dropped_turns == 1 {
            ""
        } else {
            "s"
        };
        items.push((
            5,
            Span::styled(
                format!("{} old turn{s} dropped", app.stats.dropped_turns),
                warn,
            ),
        ));
    }
    if app.stats.context_shifts > 0 {
        let times = match app.stats.context_shifts {
            1 => String::new(),
            n => format!(" ×{n}"),
        };
        items.push((5, Span::styled(format!("window full{times}"), warn)));
    }
    if app.stats.dropped_tokens > 0 {
        items.push((
            5,
            Span::styled(
                format!("start of text cut ({} tokens)", app.stats.dropped_tokens),
                warn,
            ),
        ));
    }
    if let Some(message) = &app.message {
        items.push((
            6,
            Span::styled(message.clone(), Style::default().fg(t.muted)),
        ));
    }
    // How much of the last prompt the model had to read: a new chat turn reuses the cache.
    if let (Some((ran, prompt)), false) = (app.stats.prefill, app.is_generating()) {
        if prompt > 0 {
            items.push((
                0,
                Span::styled(
                    format!("prompt {prompt} · {ran} new"),
                    Style::default().fg(t.muted),
                ),
            ));
        }
    }
    const SEP: usize = 3;
    let width = |items: &[(u8, Span)]| {
        1 + items.iter().map(|(_, s)| s.width()).sum::<usize>()
            + SEP * items.len().saturating_sub(1)
    };
    while width(&items) > area.width as usize {
        let Some(least) = items
            .iter()
            .enumerate()
            .filter(|(_, (p, _))| *p < 4)
            .min_by_key(|(i, (p, _))| (*p, usize::MAX - i))
            .map(|(i, _)| i)
        else {
            break;
        };
        items.remove(least);
    }
    let sep = Span::styled(" │ ", Style::default().fg(t.border));
    let mut spans = vec![Span::raw(" ")];
    for (i, (_, span)) in items.into_iter().enumerate() {
        if i > 0 {
            spans.push(sep.clone());
        }
        spans.push(span);
    }
    frame.render_widget(
        Paragraph::new(Line::from(spans)).style(Style::default().bg(t.selection)),
        area,
    );
}

fn human_count(n: usize) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.1}B", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.0}K", n as f64 / 1e3),
        n => n.to_string(),
    }
}
