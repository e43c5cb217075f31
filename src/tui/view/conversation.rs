//! The conversation pane (chat turns or the completion document), with the wrapped lines of
//! the last frame kept per block so a frame only wraps what changed.

use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;
use unicode_width::UnicodeWidthStr;

use super::text::{wrap, wrap_segments};
use super::widgets::border;
use crate::engine::chat::Role;
use crate::tui::state::{App, BodyLayout, Mode, CONTINUATION};
use crate::tui::theme::Theme;

/// The conversation wrapped into lines at the last frame, block by block (the system text, each
/// turn, the document), so a frame only wraps the blocks that changed: while the model writes,
/// that is the reply being written, however long the conversation before it.
#[derive(Default)]
pub struct WrapCache {
    width: usize,
    theme: Option<Theme>,
    show_probs: bool,
    blocks: Vec<(u64, Vec<Line<'static>>)>,
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
            let turn = &app.conversation.turns[*i];
            (
                1u8,
                turn.role == Role::User,
                &turn.text,
                token_view(app, *i),
                prompt_view(app, *i),
                app.turn_label(*i, ""),
            )
                .hash(&mut h);
        }
        BodyBlock::Document => {
            let tokens = token_view(app, CONTINUATION);
            (
                2u8,
                &app.conversation.document,
                app.conversation.continuation_start,
                tokens,
                prompt_view(app, CONTINUATION),
            )
                .hash(&mut h);
        }
        BodyBlock::Placeholder(text) => (3u8, text).hash(&mut h),
    }
    h.finish()
}

/// What decides how a reply's tokens are drawn: their count, the branch shown, the cursor.
fn token_view(app: &App, key: usize) -> (usize, usize, Option<usize>) {
    let reply = app.conversation.replies.get(&key);
    let cursor = app.inspect.as_ref().filter(|i| i.reply == key && !i.prompt);
    (
        reply.map_or(0, |r| r.pieces().len()),
        reply.map_or(0, |r| r.active()),
        cursor.map(|i| i.token),
    )
}

/// What decides how the user's text under `key` is drawn: its scored tokens, the cursor.
fn prompt_view(app: &App, key: usize) -> (usize, Option<usize>) {
    let tokens = app.conversation.prompt_tokens(key).map_or(0, <[_]>::len);
    let cursor = app.inspect.as_ref().filter(|i| i.reply == key && i.prompt);
    (tokens, cursor.map(|i| i.token))
}

/// A reply's tokens as styled text, when they are to be seen one by one: coloured by
/// probability when that view is on, the one under the token cursor highlighted.
fn piece_segments(app: &App, key: usize, plain: Style) -> Option<Vec<(String, Style)>> {
    let reply = app.conversation.replies.get(&key)?;
    let pieces = reply
        .pieces()
        .iter()
        .map(|p| (p.text.as_str(), Some(p.prob)));
    token_segments(app, key, false, pieces, plain)
}

/// The user's text under `key` as styled tokens, like [`piece_segments`]: coloured by how
/// probable the model found each token (unscored ones plain).
fn prompt_segments(app: &App, key: usize, plain: Style) -> Option<Vec<(String, Style)>> {
    let tokens = app.conversation.prompt_tokens(key)?;
    let pieces = tokens
        .iter()
        .map(|t| (t.text.as_str(), t.score.as_ref().map(|s| s.prob)));
    token_segments(app, key, true, pieces, plain)
}

/// Tokens as styled text when they are to be seen one by one (the probability view is on, or
/// the cursor is on them): `None` otherwise.
fn token_segments<'a>(
    app: &App,
    key: usize,
    prompt: bool,
    pieces: impl Iterator<Item = (&'a str, Option<f32>)>,
    plain: Style,
) -> Option<Vec<(String, Style)>> {
    let cursor = app
        .inspect
        .as_ref()
        .filter(|i| i.reply == key && i.prompt == prompt)
        .map(|i| i.token);
    if !app.look.show_probs && cursor.is_none() {
        return None;
    }
    let t = &app.look.theme;
    let segments = pieces.enumerate().map(|(i, (text, prob))| {
        if Some(i) == cursor {
            // Visible even when the token is a line break or released no text.
            let text = match text {
                "" => "·".to_string(),
                text => text.replace('\n', "⏎\n"),
            };
            let style = Style::default()
                .fg(t.background)
                .bg(t.accent)
                .add_modifier(Modifier::BOLD);
            (text, style)
        } else if let Some(prob) = prob.filter(|_| app.look.show_probs) {
            (
                text.to_string(),
                Style::default().fg(t.probability_color(prob)),
            )
        } else {
            (text.to_string(), plain)
        }
    });
    Some(segments.collect())
}

fn block_lines(app: &App, block: &BodyBlock, width: usize) -> Vec<Line<'static>> {
    let t = &app.look.theme;
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
            let turn = &app.conversation.turns[*index];
            let (name, color) = match turn.role {
                Role::User => ("You", t.user),
                Role::Model => ("GPT-2", t.model),
            };
            let label = app.turn_label(*index, name);
            let name = label.as_str();
            let plain = Style::default().fg(t.foreground);
            let tokens = match turn.role {
                Role::User => prompt_segments(app, *index, plain),
                Role::Model => piece_segments(app, *index, plain),
            };
            if let Some(pieces) = tokens {
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
                .conversation
                .continuation_start
                .unwrap_or(app.conversation.document.len())
                .min(app.conversation.document.len());
            let reply = piece_segments(app, CONTINUATION, Style::default().fg(t.model));
            let prompt = prompt_segments(app, CONTINUATION, Style::default().fg(t.foreground));
            if reply.is_some() || prompt.is_some() {
                let mut segments = prompt.unwrap_or_else(|| {
                    vec![(
                        app.conversation.document[..start].to_string(),
                        Style::default().fg(t.foreground),
                    )]
                });
                segments.extend(reply.unwrap_or_else(|| {
                    vec![(
                        app.conversation.document[start..].to_string(),
                        Style::default().fg(t.model),
                    )]
                }));
                lines.extend(wrap_segments(&segments, width));
                return lines;
            }
            // Colour the model's continuation; wrapping works on the whole text. Each line is
            // found in the text from where the last one ended (a break can swallow a space).
            let mut offset = 0;
            for l in wrap(&app.conversation.document, width) {
                let at = offset
                    + app.conversation.document[offset..]
                        .find(l.as_str())
                        .unwrap_or(0);
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

/// Draws the conversation from the lines kept in `cache` (wrapping again only the blocks that
/// changed); returns how many lines each block took and how many fit.
pub fn draw(frame: &mut Frame, app: &App, area: Rect, cache: &mut WrapCache) -> BodyLayout {
    let t = &app.look.theme;
    let title = match app.conversation.mode {
        Mode::Chat => format!("chat · {}", app.conversation.format.name()),
        Mode::Complete => "completion".to_string(),
    };
    let mut block = border(app, &title, false);
    if app.look.show_probs {
        block = block.title(probability_legend(app));
    }
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = inner.width as usize;
    let mut blocks = Vec::new();
    match app.conversation.mode {
        Mode::Chat => {
            if !app.conversation.system.is_empty() {
                blocks.push(BodyBlock::System(&app.conversation.system));
            }
            blocks.extend((0..app.conversation.turns.len()).map(BodyBlock::Turn));
            if app.conversation.turns.is_empty() {
                blocks.push(BodyBlock::Placeholder(
                    "Type a message and press Enter. F1 for help.",
                ));
            }
        }
        Mode::Complete if app.conversation.document.is_empty() => {
            blocks.push(BodyBlock::Placeholder(
                "Type the start of a text and press Enter: the model continues it.",
            ))
        }
        Mode::Complete => blocks.push(BodyBlock::Document),
    }
    if cache.width != width
        || cache.theme.as_ref() != Some(t)
        || cache.show_probs != app.look.show_probs
    {
        *cache = WrapCache {
            width,
            theme: Some(t.clone()),
            show_probs: app.look.show_probs,
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
    let layout = BodyLayout {
        lines: total,
        height,
        block_lines: cache.blocks.iter().map(|(_, l)| l.len()).collect(),
    };
    let bottom = total.saturating_sub(height);
    let start = app.panes.scroll_top.map_or(bottom, |top| top.min(bottom));
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
    layout
}

/// The probability colour scale, for the conversation's title.
fn probability_legend(app: &App) -> Line<'static> {
    let t = &app.look.theme;
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
