//! Where the interface looks: the focused pane, the selected control, and how far the
//! conversation is scrolled back in the layout the view last drew.

use crate::tui::controls::CONTROLS;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Input,
    Panel,
}

/// How the conversation was laid out at the last frame: plain numbers the view hands back
/// after drawing, not a cache of what it drew.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodyLayout {
    /// Wrapped lines in all.
    pub lines: usize,
    /// Lines that fit in the pane.
    pub height: usize,
    /// Lines of each block drawn (the system text, each turn, or the document).
    pub block_lines: Vec<usize>,
}

impl BodyLayout {
    /// Lines above block `index`; `None` when it was not drawn.
    pub fn lines_before(&self, index: usize) -> Option<usize> {
        (index < self.block_lines.len()).then(|| self.block_lines[..index].iter().sum())
    }
}

/// The focus, the sampling panel's selected control, and the conversation's scroll position.
#[derive(Debug)]
pub struct Panes {
    pub focus: Focus,
    /// The selected control in the sampling panel.
    pub selected: usize,
    /// The first conversation line shown when scrolled back; `None` follows the stream.
    pub scroll_top: Option<usize>,
    /// The conversation's layout at the last frame, as the view reported it (so scrolling can
    /// be clamped and paged without knowing the layout).
    pub layout: BodyLayout,
}

impl Default for Panes {
    fn default() -> Self {
        Self {
            focus: Focus::Input,
            selected: 0,
            scroll_top: None,
            layout: BodyLayout::default(),
        }
    }
}

impl Panes {
    pub fn toggle_focus(&mut self) {
        self.focus = if self.focus == Focus::Input {
            Focus::Panel
        } else {
            Focus::Input
        };
    }

    /// Selects the next (`+1`) or previous (`-1`) control, wrapping around.
    pub fn step_control(&mut self, direction: i32) {
        let n = CONTROLS.len();
        self.selected = if direction < 0 {
            (self.selected + n - 1) % n
        } else {
            (self.selected + 1) % n
        };
    }

    /// Scrolls the conversation `up` lines (negative: down). Reaching the bottom follows the
    /// stream again; while scrolled back the view stays put as new text arrives.
    pub fn scroll(&mut self, up: i64) {
        let (total, height) = self.body_metrics();
        let bottom = total.saturating_sub(height) as i64;
        let top = (self.scroll_top.map_or(bottom, |t| t as i64) - up).clamp(0, bottom);
        self.scroll_top = (top < bottom).then_some(top as usize);
    }

    /// Lines that PgUp/PgDn move: the visible height less one line of overlap.
    pub fn page(&self) -> usize {
        self.body_metrics().1.saturating_sub(1).max(1)
    }

    /// The conversation's wrapped line count and visible height at the last frame.
    pub fn body_metrics(&self) -> (usize, usize) {
        (self.layout.lines, self.layout.height)
    }

    /// Scrolls so that block `block` (the system text counts as one) starts in view, as it was
    /// laid out at the last frame.
    pub fn reveal(&mut self, block: usize) {
        let Some(start) = self.layout.lines_before(block) else {
            return;
        };
        let (total, height) = self.body_metrics();
        let bottom = total.saturating_sub(height);
        self.scroll_top = (start < bottom).then_some(start);
    }

    /// Follows the stream again (a new reply, or a cleared conversation).
    pub fn follow(&mut self) {
        self.scroll_top = None;
    }
}
