//! Drawing the token cursor's popups: the alternatives at a token, and its attention heat map.

use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use ratatui::Frame;
use unicode_width::UnicodeWidthStr;

use super::text::{clip, quoted, wrap, wrap_segments};
use super::widgets::bottom_right;
use crate::engine::{Candidate, ALTERNATIVES};
use crate::generate::trace::Trace;
use crate::tui::controls::{self, CONTROLS};
use crate::tui::state::inspect::{AttentionView, Inspect};
use crate::tui::state::replies::{Branches, Piece};
use crate::tui::state::App;

/// The keys while the cursor is shown, for the input box's title (long, then short).
pub fn hints(app: &App) -> (&'static str, &'static str) {
    match app.inspect.as_ref() {
        Some(Inspect {
            choosing: Some(_), ..
        }) => (
            "choose · ↑↓ pick · Enter branches from it · Esc back",
            "↑↓ Enter Esc",
        ),
        Some(Inspect {
            attention: None,
            trace: true,
            ..
        }) => (
            "trace · t alternatives · x ban · ←→ token · ↑↓ reply · Esc",
            "t x Esc",
        ),
        Some(Inspect {
            attention: Some(_), ..
        }) => (
            "attention · [ ] layer · < > head · m average · ←→ token · Esc back",
            "[ ] < > m Esc",
        ),
        _ => (
            "inspect · ←→ token · ↑↓ reply · Enter choose · a attention · b branch · Esc",
            "inspect · Esc leaves",
        ),
    }
}

/// The popup for the token under the cursor, over the bottom right of `area`.
pub fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let Some((inspect, reply, piece)) = app.inspected() else {
        return;
    };
    match &inspect.attention {
        Some(view) => draw_attention(frame, app, area, inspect, reply, view),
        None if inspect.trace => draw_trace(frame, app, area, inspect, reply, piece),
        None => draw_alternatives(frame, app, area, inspect, reply, piece),
    }
}

pub(super) fn popup_block(app: &App, title: String, hint: &'static str) -> Block<'static> {
    let t = &app.look.theme;
    Block::default()
        .borders(Borders::ALL)
        .border_style(Style::default().fg(t.accent))
        .style(Style::default().bg(t.background).fg(t.foreground))
        .title(Span::styled(title, Style::default().fg(t.muted)))
        .title_bottom(Span::styled(hint, Style::default().fg(t.muted)))
}

/// "token 3/12 · branch 2/3" for the popups' titles.
fn position(inspect: &Inspect, reply: &Branches) -> String {
    let mut title = format!(" token {}/{}", inspect.token + 1, reply.pieces().len());
    if reply.count() > 1 {
        title += &format!(" · branch {}/{}", reply.active() + 1, reply.count());
    }
    title + " "
}

fn draw_alternatives(
    frame: &mut Frame,
    app: &App,
    area: Rect,
    inspect: &Inspect,
    reply: &Branches,
    piece: &Piece,
) {
    let t = &app.look.theme;
    let width = 50u16.min(area.width);
    let params = CONTROLS
        .iter()
        .map(|c| format!("{} {}", c.label(), c.show(&piece.params)))
        .collect::<Vec<_>>()
        .join(" · ");
    let params = wrap(&params, width.saturating_sub(2) as usize);
    let height = (piece.top.len() + params.len() + 4) as u16;
    let popup = bottom_right(area, width, height);
    let hint = if inspect.choosing.is_some() {
        " Enter branches · Esc back "
    } else {
        " Enter choose · a attention "
    };
    let block = popup_block(app, position(inspect, reply), hint);
    let inner = block.inner(popup);
    frame.render_widget(Clear, popup);
    frame.render_widget(block, popup);
    let text_width = 18;
    let mut lines = vec![Line::from(vec![
        Span::styled("drawn ", Style::default().fg(t.muted)),
        Span::styled(
            format!("{:<text_width$}", clip(&quoted(&piece.text), text_width)),
            Style::default().fg(t.accent),
        ),
        Span::styled(
            format!("{:>6.2}%", piece.prob * 100.0),
            Style::default().fg(t.probability_color(piece.prob)),
        ),
    ])];
    let bar_width = (inner.width as usize).saturating_sub(text_width + 14);
    for (row, candidate) in piece.top.iter().enumerate() {
        let selected = inspect.choosing == Some(row);
        let marker = match (selected, candidate.id == piece.id) {
            (true, _) => "▶",
            (false, true) => "●",
            _ => " ",
        };
        lines.push(candidate_line(
            app,
            row,
            candidate,
            marker,
            selected,
            (text_width, bar_width),
        ));
    }
    lines.push(Line::styled(
        "settings at this token:",
        Style::default().fg(t.muted),
    ));
    lines.extend(
        params
            .into_iter()
            .map(|l| Line::styled(l, Style::default().fg(t.muted))),
    );
    frame.render_widget(Paragraph::new(lines), inner);
}

/// One row of an alternatives list: rank, text, probability and a bar of `widths.1` at most.
pub(super) fn candidate_line(
    app: &App,
    row: usize,
    candidate: &Candidate,
    marker: &str,
    selected: bool,
    (text_width, bar_width): (usize, usize),
) -> Line<'static> {
    let t = &app.look.theme;
    let bar = ((candidate.prob * bar_width as f32).round() as usize).min(bar_width);
    let base = if selected {
        Style::default().bg(t.selection).fg(t.accent)
    } else {
        Style::default().fg(t.foreground)
    };
    let name = if candidate.ends {
        "<|endoftext|>".to_string()
    } else {
        quoted(&candidate.text)
    };
    Line::from(vec![
        Span::styled(
            format!(
                "{marker}{:>2} {:<text_width$}",
                row + 1,
                clip(&name, text_width)
            ),
            base,
        ),
        Span::styled(format!("{:>6.2}% ", candidate.prob * 100.0), base),
        Span::styled(
            "█".repeat(bar),
            Style::default().fg(t.probability_color(candidate.prob)),
        ),
    ])
}

/// The settings a piece was drawn with, on lines of `width`, its logit bias last.
fn settings_lines(app: &App, piece: &Piece, width: usize) -> Vec<String> {
    let mut params = CONTROLS
        .iter()
        .map(|c| format!("{} {}", c.label(), c.show(&piece.params)))
        .collect::<Vec<_>>();
    if !piece.params.logit_bias.is_empty() {
        let tokenizer = app.engine.tokenizer.as_deref();
        params.push(format!(
            "bias {}",
            controls::show_biases(&piece.params, tokenizer)
        ));
    }
    wrap(&params.join(" · "), width)
}

/// How a candidate of the trace is named: as in the alternatives, else its text from the
/// tokenizer, else its id.
fn trace_name(app: &App, piece: &Piece, id: u32) -> String {
    if let Some(c) = piece.top.iter().find(|c| c.id == id) {
        return if c.ends {
            "<|endoftext|>".to_string()
        } else {
            quoted(&c.text)
        };
    }
    match &app.engine.tokenizer {
        Some(t) if (id as usize) < t.vocab_size() => quoted(&t.token_text(id)),
        _ => format!("#{id}"),
    }
}

/// The sampler trace of the token: each candidate's probability raw, after the logit bias and
/// the repetition penalty, at the temperature, the stage that cut it, and the share it was
/// drawn with; the drawn token marked.
fn draw_trace(
    frame: &mut Frame,
    app: &App,
    area: Rect,
    inspect: &Inspect,
    reply: &Branches,
    piece: &Piece,
) {
    let t = &app.look.theme;
    let width = 64u16.min(area.width);
    let inner_width = width.saturating_sub(2) as usize;
    let block = popup_block(
        app,
        format!(" trace ·{}", position(inspect, reply)),
        " t alternatives · x ban ",
    );
    let muted = Style::default().fg(t.muted);
    let Some(trace) = &piece.trace else {
        let popup = bottom_right(area, width, 3);
        let inner = block.inner(popup);
        frame.render_widget(Clear, popup);
        frame.render_widget(block, popup);
        let note = "no trace recorded: turn on F3 or F6 before a reply is written";
        let line = Line::styled(clip(note, inner_width), muted);
        frame.render_widget(Paragraph::new(line), inner);
        return;
    };
    let settings = settings_lines(app, piece, inner_width);
    let mut lines = vec![Line::styled(
        format!(
            "{:<4}{:<12}{:>9}{:>9}{:>9} {:<6}{:>9}",
            "", "token", "raw", "bias+rep", "temp", "cut by", "final"
        ),
        muted,
    )];
    lines.extend(trace_rows(app, piece, trace));
    let mut footer = format!("● drawn · {} survived every stage", trace.survivors);
    if piece.id != trace.drawn {
        footer += &format!(" · you chose {}", trace_name(app, piece, piece.id));
    }
    lines.push(Line::styled(clip(&footer, inner_width), muted));
    lines.extend(settings.into_iter().map(|l| Line::styled(l, muted)));
    let popup = bottom_right(area, width, lines.len() as u16 + 2);
    let inner = block.inner(popup);
    frame.render_widget(Clear, popup);
    frame.render_widget(block, popup);
    frame.render_widget(Paragraph::new(lines), inner);
}

/// One line per candidate of the trace, in its order (most likely raw first).
fn trace_rows(app: &App, piece: &Piece, trace: &Trace) -> Vec<Line<'static>> {
    let t = &app.look.theme;
    let percent = |p: f32| format!("{:>8.2}%", p * 100.0);
    trace
        .rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let drawn = row.id == trace.drawn;
            let base = if drawn {
                Style::default().fg(t.accent).add_modifier(Modifier::BOLD)
            } else {
                Style::default().fg(t.foreground)
            };
            // The drawn token comes after the most likely ones when it is not among them.
            let rank = if drawn && i + 1 == trace.rows.len() && i >= ALTERNATIVES {
                " …".to_string()
            } else {
                format!("{:>2}", i + 1)
            };
            let marker = if drawn { "●" } else { " " };
            let name = clip(&trace_name(app, piece, row.id), 12);
            let (cut, kept) = match row.removed_by {
                Some(stage) => (
                    Span::styled(
                        format!(" {:<6}", stage.name()),
                        Style::default().fg(t.warning),
                    ),
                    Span::styled(format!("{:>9}", "·"), Style::default().fg(t.muted)),
                ),
                None => (
                    Span::styled(format!(" {:<6}", ""), base),
                    Span::styled(
                        percent(row.final_prob),
                        Style::default().fg(t.probability_color(row.final_prob)),
                    ),
                ),
            };
            Line::from(vec![
                Span::styled(format!("{marker}{rank} {name:<12}"), base),
                Span::styled(percent(row.raw), base),
                Span::styled(percent(row.adjusted), base),
                Span::styled(percent(row.tempered), base),
                cut,
                kept,
            ])
        })
        .collect()
}

fn draw_attention(
    frame: &mut Frame,
    app: &App,
    area: Rect,
    inspect: &Inspect,
    reply: &Branches,
    view: &AttentionView,
) {
    let t = &app.look.theme;
    let heads = view.shape().map_or(0, |(_, h)| h);
    // A row per head and the average, the strongest tokens, three lines of text.
    let height = (heads as u16 + 7).max(7);
    let popup = bottom_right(area, area.width, height);
    let title = match (view.shape(), view.head) {
        (Some((layers, _)), Some(h)) => format!(
            " attention · layer {}/{layers} · head {}/{heads} ·{}",
            view.layer.min(layers.saturating_sub(1)) + 1,
            h.min(heads.saturating_sub(1)) + 1,
            position(inspect, reply)
        ),
        (Some((layers, _)), None) => format!(
            " attention · layer {}/{layers} · average of {heads} heads ·{}",
            view.layer.min(layers.saturating_sub(1)) + 1,
            position(inspect, reply)
        ),
        (None, _) => format!(" attention ·{}", position(inspect, reply)),
    };
    let block = popup_block(app, title, " [ ] layer · < > head · m average · Esc ");
    let inner = block.inner(popup);
    frame.render_widget(Clear, popup);
    frame.render_widget(block, popup);
    let map = match &view.map {
        None => {
            let line = Line::styled("computing…", Style::default().fg(t.muted));
            frame.render_widget(Paragraph::new(line), inner);
            return;
        }
        Some(Err(e)) => {
            let line = Line::styled(e.clone(), Style::default().fg(t.warning));
            frame.render_widget(Paragraph::new(line), inner);
            return;
        }
        Some(Ok(map)) => map,
    };
    let Some(layer) = map
        .weights
        .get(view.layer.min(map.weights.len().saturating_sub(1)))
    else {
        return;
    };
    // The tokens after this one in the reply: the future, which attention cannot see.
    let future = reply.pieces().len() - inspect.token - 1;
    let columns = (inner.width as usize).saturating_sub(5);
    let keys = map.tokens.len();
    let shown_future = future.min(columns / 4);
    let shown_keys = keys.min(columns - shown_future.min(columns));
    let first = keys - shown_keys;
    let mut lines = Vec::new();
    let average = view.weights_of(None).unwrap_or_default();
    let mut rows: Vec<(String, &[f32], bool)> = layer
        .iter()
        .enumerate()
        .map(|(h, w)| (format!("h{}", h + 1), w.as_slice(), view.head == Some(h)))
        .collect();
    rows.push(("avg".into(), &average, view.head.is_none()));
    for (label, weights, selected) in &rows {
        let strongest = weights.iter().copied().fold(f32::MIN_POSITIVE, f32::max);
        let marker = if *selected { "▶" } else { " " };
        let mut spans = vec![Span::styled(
            format!("{marker}{label:<3} "),
            Style::default().fg(if *selected { t.accent } else { t.muted }),
        )];
        spans.extend(
            weights.get(first..).unwrap_or_default().iter().map(|w| {
                Span::styled("█", Style::default().fg(t.probability_color(w / strongest)))
            }),
        );
        spans.push(Span::styled(
            "·".repeat(shown_future),
            Style::default().fg(t.border),
        ));
        lines.push(Line::from(spans));
    }
    let weights = match view.head {
        None => average.clone(),
        Some(_) => view.weights().unwrap_or_default(),
    };
    lines.push(strongest_line(app, &map.tokens, &weights));
    lines.extend(text_heat(
        app,
        inspect,
        reply,
        &map.tokens,
        &weights,
        inner.width,
    ));
    frame.render_widget(Paragraph::new(lines), inner);
}

/// The five tokens attended to most, with their weights.
fn strongest_line(app: &App, tokens: &[String], weights: &[f32]) -> Line<'static> {
    let t = &app.look.theme;
    let mut order: Vec<usize> = (0..weights.len().min(tokens.len())).collect();
    order.sort_by(|&a, &b| weights[b].total_cmp(&weights[a]).then(a.cmp(&b)));
    let mut spans = vec![Span::styled("strongest ", Style::default().fg(t.muted))];
    for &k in order.iter().take(5) {
        spans.push(Span::styled(
            format!("{} {:.0}%  ", quoted(&tokens[k]), weights[k] * 100.0),
            Style::default().fg(t.foreground),
        ));
    }
    Line::from(spans)
}

/// The text before the token, each token coloured by its weight (relative to the strongest),
/// the token itself highlighted, and the reply after it dimmed as the masked future.
fn text_heat(
    app: &App,
    inspect: &Inspect,
    reply: &Branches,
    tokens: &[String],
    weights: &[f32],
    width: u16,
) -> Vec<Line<'static>> {
    let t = &app.look.theme;
    let strongest = weights.iter().copied().fold(f32::MIN_POSITIVE, f32::max);
    let Some(last) = tokens.len().checked_sub(1) else {
        return vec![];
    };
    let mut segments: Vec<(String, Style)> = tokens
        .iter()
        .zip(weights)
        .enumerate()
        .map(|(k, (text, w))| {
            let text = text.replace('\n', "⏎");
            let style = if k == last {
                Style::default()
                    .fg(t.background)
                    .bg(t.accent)
                    .add_modifier(Modifier::BOLD)
            } else {
                Style::default()
                    .fg(t.background)
                    .bg(t.probability_color(w / strongest))
            };
            (text, style)
        })
        .collect();
    let masked = Style::default().fg(t.border).add_modifier(Modifier::DIM);
    segments.extend(
        reply.pieces()[inspect.token + 1..]
            .iter()
            .map(|p| (p.text.replace('\n', "⏎"), masked)),
    );
    let mut lines = wrap_segments(&segments, width as usize);
    // The lines around the token: the end of what came before, and a little of the future.
    let at = query_line(&lines, segments_width(&segments[..=last]));
    let from = (at + 1).saturating_sub(3);
    lines.drain(..from.min(lines.len()));
    lines.truncate(3);
    lines
}

fn segments_width(segments: &[(String, Style)]) -> usize {
    segments.iter().map(|(s, _)| s.width()).sum()
}

/// The wrapped line that holds the column `upto` (counted across all lines).
fn query_line(lines: &[Line], upto: usize) -> usize {
    let mut used = 0;
    for (i, line) in lines.iter().enumerate() {
        used += line.width();
        if used >= upto {
            return i;
        }
    }
    lines.len().saturating_sub(1)
}
