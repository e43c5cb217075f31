//! Drawing: reads the app state and changes nothing in it; the only thing drawing writes is its
//! own [`Screen`] (the wrapped lines of the last frame), and what the frame's layout was is
//! handed back for the event loop to pass to the state (`Action::Drawn`).

mod anatomy;
mod conversation;
mod help;
mod input;
mod inspect;
mod prompt_token;
mod sampling;
mod sessions;
mod status;
pub mod text;
mod widgets;

use ratatui::layout::{Constraint, Layout};
use ratatui::style::Style;
use ratatui::widgets::Block;
use ratatui::Frame;

use crate::tui::state::{App, BodyLayout};
pub use conversation::WrapCache;

const PANEL_WIDTH: u16 = 28;

/// What the view keeps between frames: owned by the event loop, lent to [`draw`].
#[derive(Default)]
pub struct Screen {
    wrap: WrapCache,
    layout: BodyLayout,
}

impl Screen {
    /// The conversation's layout at the last frame, for the state (scrolling, paging).
    pub fn layout(&self) -> BodyLayout {
        self.layout.clone()
    }
}

pub fn draw(frame: &mut Frame, app: &App, screen: &mut Screen) {
    let t = &app.look.theme;
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
    let input_height = (app.input.text.lines().count().max(1) as u16
        + if app.input.text.ends_with('\n') { 1 } else { 0 }
        + 2)
    .min(left.height / 2)
    .max(3.min(left.height));
    let [body, input] =
        Layout::vertical([Constraint::Min(0), Constraint::Length(input_height)]).areas(left);
    screen.layout = conversation::draw(frame, app, body, &mut screen.wrap);
    input::draw(frame, app, input);
    if let Some(panel) = panel {
        sampling::draw(frame, app, panel);
    }
    status::draw(frame, app, status);
    if app.inspect.is_some() {
        inspect::draw(frame, app, main);
        prompt_token::draw(frame, app, main);
    }
    if app.overlay.show_help {
        help::draw(frame, app, area);
    }
    if app.overlay.show_anatomy {
        anatomy::draw(frame, app, area);
    }
    if let Some(picker) = &app.overlay.sessions {
        sessions::draw(frame, app, picker, area);
    }
}
