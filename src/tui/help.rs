//! The help overlay: every key and command.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};
use ratatui::Frame;
use unicode_width::UnicodeWidthStr;

use super::app::App;

pub const HELP: &[(&str, &str)] = &[
    ("Enter", "send (completion mode: continue the text)"),
    ("Alt+Enter, Ctrl+J", "new line in the input"),
    ("Up / Down", "recall earlier inputs"),
    ("← → Home End", "move in the input"),
    ("PgUp / PgDn, wheel", "scroll the conversation"),
    ("Tab", "to the sampling panel and back"),
    (
        "↑↓, then ←→ or - +",
        "in the panel: pick a control, change it live",
    ),
    ("Esc", "stop generating, keep the text"),
    ("Ctrl+C", "stop generating; quit when idle"),
    ("Ctrl+R, /regen", "regenerate the last reply"),
    ("Ctrl+T", "next theme"),
    ("/theme NAME", "dark, light, high-contrast, or your own"),
    ("F1, ?, /help", "this help (? on an empty input)"),
    ("F2, /mode chat|complete", "switch chat / completion mode"),
    ("Ctrl+E", "completion mode: edit the whole text"),
    ("F3, /probs", "colour tokens by their probability"),
    ("F4, /tokens", "the input as tokens (again: with ids)"),
    ("F5, /anatomy", "where the model's parameters sit"),
    ("F6, /inspect", "token cursor on the last reply; in it:"),
    ("  ← → Home End", "move by token"),
    ("  ↑ ↓", "previous / next reply"),
    ("  Enter", "choose an alternative (↑↓), Enter branches"),
    ("  b / B", "next / previous branch of the reply"),
    ("  a", "attention of the token over the text"),
    ("  [ ]  < >  m", "attention: layer, head, average of heads"),
    ("  Esc", "back; leaves the token cursor"),
    ("/set NAME VALUE", "change a setting live; NAME is one of"),
    ("", "temperature top_k top_p min_p max_tokens"),
    ("", "repeat_penalty repeat_last_n seed (or random)"),
    ("/format dialogpt|transcript", "chat prompt format"),
    ("/system TEXT", "text before the chat (empty: none)"),
    ("/undo", "remove the last exchange"),
    ("/clear", "start over"),
    (
        "/save PATH, /load PATH",
        "transcript as JSON, with the settings",
    ),
    ("/export PATH", "the conversation as Markdown"),
    ("/quit", "quit"),
];

pub fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let width = area.width.saturating_sub(4).min(80);
    let height = area.height.saturating_sub(2).min(HELP.len() as u16 + 2);
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    frame.render_widget(Clear, popup);
    let fits = popup.height.saturating_sub(2) as usize >= HELP.len();
    let title = if fits {
        "help · any key closes"
    } else {
        "help · ↑↓ scroll · other keys close"
    };
    let block = super::view::border(app, title, true).style(Style::default().bg(t.background));
    let inner = block.inner(popup);
    frame.render_widget(block, popup);
    let key_width = HELP.iter().map(|(k, _)| k.width()).max().unwrap_or(0);
    let skip = app
        .help_scroll
        .min(HELP.len().saturating_sub(inner.height as usize));
    let lines: Vec<Line> = HELP
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
