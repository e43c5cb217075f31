//! Drawing: reads the app state, changes nothing.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use ratatui::Frame;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use super::app::{App, EngineState, Focus, Mode, CONTINUATION};
use super::controls::CONTROLS;
use crate::engine::chat::Role;

const PANEL_WIDTH: u16 = 28;

pub fn draw(frame: &mut Frame, app: &App) {
    let t = &app.theme;
    let area = frame.area();
    frame.render_widget(
        Block::default().style(Style::default().bg(t.background).fg(t.foreground)),
        area,
    );
    let [main, status] = Layout::vertical([Constraint::Min(0), Constraint::Length(1)]).areas(area);
    let show_panel = main.width >= 60;
    let (left, panel) = if show_panel {
        let [l, p] =
            Layout::horizontal([Constraint::Min(0), Constraint::Length(PANEL_WIDTH)]).areas(main);
        (l, Some(p))
    } else {
        (main, None)
    };
    let input_height = (app.input.lines().count().max(1) as u16
        + if app.input.ends_with('\n') { 1 } else { 0 }
        + 2)
    .min(left.height / 2)
    .max(3.min(left.height));
    let [body, input] =
        Layout::vertical([Constraint::Min(0), Constraint::Length(input_height)]).areas(left);
    draw_body(frame, app, body);
    draw_input(frame, app, input);
    if let Some(panel) = panel {
        draw_panel(frame, app, panel);
    }
    draw_status(frame, app, status);
    if app.inspect.is_some() {
        super::inspect_view::draw(frame, app, main);
    }
    if app.show_help {
        super::help::draw(frame, app, area);
    }
    if app.show_anatomy {
        draw_anatomy(frame, app, area);
    }
}

fn popup_area(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width.saturating_sub(2));
    let height = height.min(area.height.saturating_sub(2));
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

fn draw_anatomy(frame: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let Some(anatomy) = &app.anatomy else {
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
    let dtype_bytes = match app.model.as_ref().map(|m| m.dtype.as_str()) {
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

pub(super) fn border(app: &App, title: &str, focused: bool) -> Block<'static> {
    let t = &app.theme;
    Block::default()
        .borders(Borders::ALL)
        .border_style(Style::default().fg(if focused { t.accent } else { t.border }))
        .title(Span::styled(
            format!(" {title} "),
            Style::default().fg(t.muted),
        ))
}

/// Word-wraps `text` into lines of at most `width` columns (long words are cut). Linear in the
/// text's length: it runs over the whole conversation on every frame.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    use unicode_width::UnicodeWidthChar;
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

/// The conversation wrapped into lines at the last frame, block by block (the system text, each
/// turn, the document), so a frame only wraps the blocks that changed: while the model writes,
/// that is the reply being written, however long the conversation before it.
#[derive(Default)]
pub struct WrapCache {
    width: usize,
    theme: Option<super::theme::Theme>,
    show_probs: bool,
    blocks: Vec<(u64, Vec<Line<'static>>)>,
}

impl WrapCache {
    /// Lines above block `index` at the last frame; `None` when it was not drawn.
    pub fn lines_before(&self, index: usize) -> Option<usize> {
        (index < self.blocks.len()).then(|| self.blocks[..index].iter().map(|(_, l)| l.len()).sum())
    }
}

/// What the conversation pane shows, in order.
enum BodyBlock<'a> {
    System(&'a str),
    Turn(usize),
    Document,
    Placeholder(&'static str),
}

fn block_key(app: &App, block: &BodyBlock) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    match block {
        BodyBlock::System(text) => (0u8, text).hash(&mut h),
        BodyBlock::Turn(i) => {
            let turn = &app.turns[*i];
            (
                1u8,
                turn.role == Role::User,
                &turn.text,
                token_view(app, *i),
            )
                .hash(&mut h);
        }
        BodyBlock::Document => {
            let tokens = token_view(app, CONTINUATION);
            (2u8, &app.document, app.continuation_start, tokens).hash(&mut h);
        }
        BodyBlock::Placeholder(text) => (3u8, text).hash(&mut h),
    }
    h.finish()
}

/// What decides how a reply's tokens are drawn: their count, the branch shown, the cursor.
fn token_view(app: &App, key: usize) -> (usize, usize, Option<usize>) {
    let reply = app.replies.get(&key);
    let cursor = app.inspect.as_ref().filter(|i| i.reply == key);
    (
        reply.map_or(0, |r| r.pieces().len()),
        reply.map_or(0, |r| r.active()),
        cursor.map(|i| i.token),
    )
}

/// A reply's tokens as styled text, when they are to be seen one by one: coloured by
/// probability when that view is on, the one under the token cursor highlighted.
fn piece_segments(app: &App, key: usize, plain: Style) -> Option<Vec<(String, Style)>> {
    let reply = app.replies.get(&key)?;
    let cursor = app
        .inspect
        .as_ref()
        .filter(|i| i.reply == key)
        .map(|i| i.token);
    if !app.show_probs && cursor.is_none() {
        return None;
    }
    let t = &app.theme;
    let segments = reply.pieces().iter().enumerate().map(|(i, piece)| {
        if Some(i) == cursor {
            // Visible even when the token is a line break or released no text.
            let text = match piece.text.as_str() {
                "" => "·".to_string(),
                text => text.replace('\n', "⏎\n"),
            };
            let style = Style::default()
                .fg(t.background)
                .bg(t.accent)
                .add_modifier(Modifier::BOLD);
            (text, style)
        } else if app.show_probs {
            (
                piece.text.clone(),
                Style::default().fg(t.probability_color(piece.prob)),
            )
        } else {
            (piece.text.clone(), plain)
        }
    });
    Some(segments.collect())
}

fn block_lines(app: &App, block: &BodyBlock, width: usize) -> Vec<Line<'static>> {
    let t = &app.theme;
    let mut lines: Vec<Line<'static>> = Vec::new();
    match block {
        BodyBlock::System(text) => {
            for l in wrap(&format!("system: {text}"), width) {
                lines.push(Line::styled(l, Style::default().fg(t.muted)));
            }
        }
        BodyBlock::Placeholder(text) => {
            lines.push(Line::styled(*text, Style::default().fg(t.muted)))
        }
        BodyBlock::Turn(index) => {
            let turn = &app.turns[*index];
            let (name, color) = match turn.role {
                Role::User => ("You", t.user),
                Role::Model => ("GPT-2", t.model),
            };
            if let Some(pieces) = piece_segments(app, *index, Style::default().fg(t.foreground)) {
                let mut segments = vec![(
                    format!("{name}: "),
                    Style::default().fg(color).add_modifier(Modifier::BOLD),
                )];
                segments.extend(pieces);
                lines.extend(wrap_segments(&segments, width));
            } else {
                let text = format!("{name}: {}", turn.text);
                for (i, l) in wrap(&text, width).into_iter().enumerate() {
                    if i == 0 && l.len() > name.len() {
                        let (head, rest) = l.split_at(name.len() + 1);
                        lines.push(Line::from(vec![
                            Span::styled(
                                head.to_string(),
                                Style::default().fg(color).add_modifier(Modifier::BOLD),
                            ),
                            Span::styled(rest.to_string(), Style::default().fg(t.foreground)),
                        ]));
                    } else {
                        lines.push(Line::styled(l, Style::default().fg(t.foreground)));
                    }
                }
            }
            lines.push(Line::default());
        }
        BodyBlock::Document => {
            let start = app
                .continuation_start
                .unwrap_or(app.document.len())
                .min(app.document.len());
            if let Some(pieces) = piece_segments(app, CONTINUATION, Style::default().fg(t.model)) {
                let mut segments = vec![(
                    app.document[..start].to_string(),
                    Style::default().fg(t.foreground),
                )];
                segments.extend(pieces);
                lines.extend(wrap_segments(&segments, width));
                return lines;
            }
            // Colour the model's continuation; wrapping works on the whole text. Each line is
            // found in the text from where the last one ended (a break can swallow a space).
            let mut offset = 0;
            for l in wrap(&app.document, width) {
                let at = offset + app.document[offset..].find(l.as_str()).unwrap_or(0);
                let end = at + l.len();
                let line = if end <= start {
                    Line::styled(l, Style::default().fg(t.foreground))
                } else if at >= start {
                    Line::styled(l, Style::default().fg(t.model))
                } else {
                    let cut = start - at;
                    Line::from(vec![
                        Span::styled(l[..cut].to_string(), Style::default().fg(t.foreground)),
                        Span::styled(l[cut..].to_string(), Style::default().fg(t.model)),
                    ])
                };
                lines.push(line);
                offset = end;
            }
        }
    }
    lines
}

fn draw_body(frame: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let title = match app.mode {
        Mode::Chat => format!("chat · {}", app.format.name()),
        Mode::Complete => "completion".to_string(),
    };
    let mut block = border(app, &title, false);
    if app.show_probs {
        block = block.title(probability_legend(app));
    }
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = inner.width as usize;
    let mut blocks = Vec::new();
    match app.mode {
        Mode::Chat => {
            if !app.system.is_empty() {
                blocks.push(BodyBlock::System(&app.system));
            }
            blocks.extend((0..app.turns.len()).map(BodyBlock::Turn));
            if app.turns.is_empty() {
                blocks.push(BodyBlock::Placeholder(
                    "Type a message and press Enter. F1 for help.",
                ));
            }
        }
        Mode::Complete if app.document.is_empty() => blocks.push(BodyBlock::Placeholder(
            "Type the start of a text and press Enter: the model continues it.",
        )),
        Mode::Complete => blocks.push(BodyBlock::Document),
    }
    let mut cache = app.wrap_cache.borrow_mut();
    if cache.width != width || cache.theme.as_ref() != Some(t) || cache.show_probs != app.show_probs
    {
        *cache = WrapCache {
            width,
            theme: Some(t.clone()),
            show_probs: app.show_probs,
            blocks: Vec::new(),
        };
    }
    cache.blocks.truncate(blocks.len());
    for (i, block) in blocks.iter().enumerate() {
        let key = block_key(app, block);
        match cache.blocks.get(i) {
            Some((cached, _)) if *cached == key => {}
            _ => {
                let entry = (key, block_lines(app, block, width));
                if i < cache.blocks.len() {
                    cache.blocks[i] = entry;
                } else {
                    cache.blocks.push(entry);
                }
            }
        }
    }
    let total: usize = cache.blocks.iter().map(|(_, l)| l.len()).sum();
    let height = inner.height as usize;
    app.body_metrics.set((total, height));
    let bottom = total.saturating_sub(height);
    let start = app.scroll_top.map_or(bottom, |top| top.min(bottom));
    let visible: Vec<Line> = cache
        .blocks
        .iter()
        .flat_map(|(_, lines)| lines.iter())
        .skip(start)
        .take(height)
        .cloned()
        .collect();
    frame.render_widget(Paragraph::new(visible), inner);
    if start < bottom && inner.width > 10 && inner.height > 0 {
        // Scrolled back: say how far, and how to get back to the stream.
        let note = format!(" ↓ {} more · PgDn ", bottom - start);
        let w = (note.width() as u16).min(inner.width);
        let at = Rect {
            x: inner.x + inner.width - w,
            y: inner.y + inner.height - 1,
            width: w,
            height: 1,
        };
        frame.render_widget(
            Paragraph::new(note).style(Style::default().fg(t.accent).bg(t.selection)),
            at,
        );
    }
}

/// The probability colour scale, for the conversation's title.
fn probability_legend(app: &App) -> Line<'static> {
    let t = &app.theme;
    let labels = ["<10%", "<30%", "<50%", "<80%", "≥80%"];
    let mut spans = vec![Span::styled(" p: ", Style::default().fg(t.muted))];
    for (label, color) in labels.iter().zip(t.probability) {
        spans.push(Span::styled(
            format!("■{label} "),
            Style::default().fg(color),
        ));
    }
    Line::from(spans).right_aligned()
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

/// The input split into its tokens, on alternating backgrounds, with ids when asked.
fn token_lines(app: &App) -> Option<Vec<Line<'static>>> {
    app.tokenizer.as_ref().filter(|_| app.token_view > 0)?;
    let rows = &app.input_rows;
    let t = &app.theme;
    let shades = [
        Style::default().bg(t.selection).fg(t.foreground),
        Style::default().bg(t.border).fg(t.foreground),
    ];
    let spans: Vec<Span<'static>> = rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let text = row.text.replace('\n', "⏎");
            let text = if app.token_view == 2 {
                format!("{text}·{}", row.id)
            } else {
                text
            };
            Span::styled(text, shades[i % 2])
        })
        .collect();
    Some(vec![Line::from(spans)])
}

fn draw_input(frame: &mut Frame, app: &App, area: Rect) {
    // The long title, else the short one, whichever fits beside the token count; the count
    // goes when even the short title leaves it no room.
    let (long, short) = match (app.mode, app.is_generating()) {
        _ if app.inspect.is_some() => super::inspect_view::hints(app),
        (_, true) => ("writing… Esc stops", "writing…"),
        (Mode::Chat, false) => ("message · Enter sends · Alt+Enter new line", "message"),
        (Mode::Complete, false) => ("text to add · Enter continues", "text to add"),
    };
    let count = app
        .model
        .as_ref()
        .map(|m| format!(" {} tokens · window {} ", app.input_tokens, m.window));
    let room = |title: &str, count: &str| title.width() + count.width() + 5 <= area.width as usize;
    let count_width = count.as_deref().unwrap_or("");
    let (title, count) = if room(long, count_width) {
        (long, count)
    } else if room(short, count_width) {
        (short, count)
    } else {
        (short, None)
    };
    let mut block = border(app, title, app.focus == Focus::Input);
    if let Some(count) = count {
        block =
            block.title(Line::styled(count, Style::default().fg(app.theme.muted)).right_aligned());
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
    let t = &app.theme;
    let lines: Vec<Line> = app
        .input
        .split('\n')
        .map(|l| Line::styled(l.to_string(), Style::default().fg(t.foreground)))
        .collect();
    let before_cursor = &app.input[..app.cursor];
    let row = before_cursor.matches('\n').count();
    let col = before_cursor.rsplit('\n').next().unwrap_or("").width();
    let skip = (row + 1).saturating_sub(inner.height as usize);
    frame.render_widget(
        Paragraph::new(lines[skip.min(lines.len())..].to_vec()),
        inner,
    );
    if app.focus == Focus::Input && inner.width > 0 && inner.height > 0 {
        let x = inner.x + (col as u16).min(inner.width - 1);
        let y = inner.y + ((row - skip) as u16).min(inner.height - 1);
        frame.set_cursor_position((x, y));
    }
}

fn draw_panel(frame: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let focused = app.focus == Focus::Panel;
    let block = border(app, "sampling · Tab", focused);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let mut lines = Vec::new();
    for (i, control) in CONTROLS.iter().enumerate() {
        let selected = focused && i == app.selected;
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
    lines.push(Line::default());
    let hint = if focused {
        "↑↓ choose  ←→ change"
    } else {
        "Tab to adjust"
    };
    lines.push(Line::styled(hint, Style::default().fg(t.muted)));
    frame.render_widget(Paragraph::new(lines), inner);
}

fn draw_status(frame: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let warn = Style::default().fg(t.warning);
    // Each item with how much it matters: when the bar is too narrow, the least important go
    // first, so the state, the context and any notice stay in view.
    let mut items: Vec<(u8, Span<'static>)> = Vec::new();
    match &app.model {
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
    let state = match &app.engine {
        EngineState::Loading(stage) => Span::raw(format!("loading: {stage}")),
        EngineState::Idle => Span::raw("idle"),
        EngineState::Generating => Span::raw("generating"),
        EngineState::Failed(_) => Span::styled("failed", warn),
    };
    items.push((9, state));
    items.push((3, Span::raw(format!("{:.1} tok/s", app.tokens_per_s))));
    if let Some(m) = &app.model {
        let share = app.context_used as f64 / m.window.max(1) as f64;
        let color = if share > 0.9 { t.warning } else { t.foreground };
        items.push((
            4,
            Span::styled(
                format!("ctx {}/{}", app.context_used, m.window),
                Style::default().fg(color),
            ),
        ));
    }
    if app.dropped_turns > 0 {
        let s = if app.dropped_turns == 1 { "" } else { "s" };
        items.push((
            5,
            Span::styled(format!("{} old turn{s} dropped", app.dropped_turns), warn),
        ));
    }
    if app.context_shifts > 0 {
        let times = match app.context_shifts {
            1 => String::new(),
            n => format!(" ×{n}"),
        };
        items.push((5, Span::styled(format!("window full{times}"), warn)));
    }
    if app.dropped_tokens > 0 {
        items.push((
            5,
            Span::styled(
                format!("start of text cut ({} tokens)", app.dropped_tokens),
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
    if let (Some((ran, prompt)), false) = (app.prefill, app.is_generating()) {
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
