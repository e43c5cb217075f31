//! The token cursor's popup on the user's own text: what the model expected at that token (its
//! top 10 there) and where the actual token stood. No sampler ran on these tokens, so the trace
//! view only says so.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};
use ratatui::Frame;

use super::inspect::{candidate_line, popup_block};
use super::text::{clip, quoted};
use super::widgets::bottom_right;
use crate::tui::state::App;

/// The popup for the user's token under the cursor, over the bottom right of `area`.
pub fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let Some((inspect, tokens, token)) = app.inspected_prompt() else {
        return;
    };
    let t = &app.look.theme;
    let muted = Style::default().fg(t.muted);
    let width = 50u16.min(area.width);
    let inner_width = width.saturating_sub(2) as usize;
    let title = format!(" your text · token {}/{} ", inspect.token + 1, tokens.len());
    let block = popup_block(app, title, " t trace · x ban · ↑↓ reply ");
    let text_width = 18;
    let mut lines = Vec::new();
    let mut head = vec![
        Span::styled("token ", muted),
        Span::styled(
            format!("{:<text_width$}", clip(&quoted(&token.text), text_width)),
            Style::default().fg(t.accent),
        ),
    ];
    match &token.score {
        Some(score) => {
            // Rank on the token's line, so that even a rank of 50,000 and an entropy of 10
            // nats fit in the popup's 48 columns.
            head.push(Span::styled(
                format!("{:>6.2}%", score.prob * 100.0),
                Style::default().fg(t.probability_color(score.prob)),
            ));
            head.push(Span::styled(format!(" · rank {}", score.rank), muted));
            lines.push(Line::from(head));
            let expected = format!("entropy {:.2} nats · the model expected:", score.entropy);
            lines.push(Line::styled(clip(&expected, inner_width), muted));
            let bar_width = inner_width.saturating_sub(text_width + 12);
            for (row, candidate) in score.top.iter().enumerate() {
                let marker = if candidate.id == token.id { "●" } else { " " };
                let widths = (text_width, bar_width);
                lines.push(candidate_line(app, row, candidate, marker, false, widths));
            }
        }
        None => {
            lines.push(Line::from(head));
            let why = "unscored: nothing before it predicts it (the start of the window)";
            lines.push(Line::styled(clip(why, inner_width), muted));
        }
    }
    if inspect.trace {
        let note = "no draw: this is your text, the sampler never ran here";
        lines.push(Line::styled(clip(note, inner_width), muted));
    }
    let popup = bottom_right(area, width, lines.len() as u16 + 2);
    let inner = block.inner(popup);
    frame.render_widget(Clear, popup);
    frame.render_widget(block, popup);
    frame.render_widget(Paragraph::new(lines), inner);
}
