//! Every key binding, as data: one table maps a key (in a scope: the help overlay, the token
//! cursor, anywhere, the sampling panel, the input) to a [`KeyAction`], each entry with how the
//! help overlay lists it. The help overlay is generated from this table and from the slash
//! commands' table ([`crate::tui::slash::COMMANDS`]), so it cannot drift from the keys.

use std::sync::OnceLock;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::slash::{self, Listed};

/// Where a binding applies. A key is looked up in the scopes in the order the state asks
/// (help, else the token cursor, then global, focus, then the panel or the input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// While the help overlay is open (any other key closes it).
    Help,
    /// While the token cursor is shown; its help rows are indented under F6.
    Inspect,
    /// While the message cursor is shown; its help rows are indented under Alt+↑.
    Messages,
    /// While the `/sessions` picker is open; its help rows are indented under `/sessions`.
    Sessions,
    /// While a yes/no question waits (`/delete`): `y` says yes, any other key no.
    Confirm,
    /// Everywhere (while the cursor is shown too).
    Global,
    /// Switching focus, except while the cursor is shown.
    Focus,
    /// The sampling panel has the focus.
    Panel,
    /// The input has the focus.
    Input,
}

/// What a key asks of the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAction {
    HelpUp,
    HelpDown,
    HelpPageUp,
    HelpPageDown,
    CancelOrQuit,
    Cancel,
    Regenerate,
    NextTheme,
    ShowHelp,
    ToggleMode,
    ToggleProbs,
    CycleTokenView,
    ToggleAnatomy,
    StartInspecting,
    PageUp,
    PageDown,
    ToggleFocus,
    PreviousControl,
    NextControl,
    Decrease,
    Increase,
    BackToInput,
    Submit,
    NewLine,
    EditDocument,
    /// Types the key's character.
    Type,
    Backspace,
    Delete,
    CursorLeft,
    CursorRight,
    CursorHome,
    CursorEnd,
    HistoryBack,
    HistoryForward,
    StopChoosing,
    CloseAttention,
    LeaveInspecting,
    ChooseUp,
    ChooseDown,
    Branch,
    StartChoosing,
    TokenLeft,
    TokenRight,
    TokenFirst,
    TokenLast,
    PreviousReply,
    NextReply,
    NextBranch,
    PreviousBranch,
    ToggleAttention,
    /// The popup shows the sampler trace of the token instead of its alternatives, or back.
    ToggleTrace,
    /// Bans the token under the cursor (or the alternative being chosen): bias -inf.
    BanToken,
    /// Layer, head or average, by the key's character (see the state's attention stepping).
    StepAttention,
    /// Puts the message cursor on the last turn.
    StartSelecting,
    MessageUp,
    MessageDown,
    /// The turn under the message cursor goes into the input to be edited.
    EditMessage,
    NextVersion,
    PreviousVersion,
    LeaveMessages,
    /// Esc while editing a turn: the turn stays as it was.
    CancelEdit,
    /// Copies the reply (or turn) under the cursor to the clipboard.
    CopyReply,
    /// The input in `$EDITOR`.
    OpenEditor,
    /// Ctrl+R: search the input history (again: an older match).
    SearchHistory,
    /// A character of the search, typed or removed.
    SearchType,
    SearchBackspace,
    AcceptSearch,
    CancelSearch,
    /// The `/sessions` picker: move, open the session, ask to delete it, close.
    PickerUp,
    PickerDown,
    PickerOpen,
    PickerDelete,
    PickerClose,
    /// `y` to a yes/no question.
    Yes,
}

/// The key: one code, or any character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Is(KeyCode),
    AnyChar,
}

/// Which modifiers a binding takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mods {
    Any,
    /// All of these held (others may be too).
    Holding(KeyModifiers),
    /// At least one of these held.
    AnyOf(KeyModifiers),
    /// None of these held.
    NoneOf(KeyModifiers),
}

/// A condition on the state for a binding to apply; when it does not hold, the lookup goes on
/// to the next entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Always,
    Generating,
    InputEmpty,
    /// Completion mode, and the model is not writing.
    CompleteIdle,
    /// The token cursor is choosing among alternatives.
    Choosing,
    AttentionOpen,
    /// The token under the cursor has alternatives to choose from.
    HasAlternatives,
    /// The input holds an edit of an earlier turn.
    Editing,
    /// A Ctrl+R search of the input history is under way.
    Searching,
}

/// How an entry shows in the help overlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Help {
    /// Starts a row: the keys as written, and what they do.
    Row(&'static str, &'static str),
    /// Covered by the row before it.
    Same,
    /// Not listed.
    Hidden,
}

#[derive(Debug, Clone, Copy)]
pub struct Binding {
    pub scope: Scope,
    pub code: Code,
    pub mods: Mods,
    pub when: When,
    pub action: KeyAction,
    pub help: Help,
}

const CTRL: KeyModifiers = KeyModifiers::CONTROL;
const ALT_SHIFT: KeyModifiers = KeyModifiers::ALT.union(KeyModifiers::SHIFT);

const fn bind(
    scope: Scope,
    code: KeyCode,
    mods: Mods,
    when: When,
    action: KeyAction,
    help: Help,
) -> Binding {
    Binding {
        scope,
        code: Code::Is(code),
        mods,
        when,
        action,
        help,
    }
}

/// A binding with any modifiers and no condition.
const fn key(scope: Scope, code: KeyCode, action: KeyAction, help: Help) -> Binding {
    bind(scope, code, Mods::Any, When::Always, action, help)
}

/// Control and a character.
const fn ctrl(scope: Scope, c: char, action: KeyAction, help: Help) -> Binding {
    bind(
        scope,
        KeyCode::Char(c),
        Mods::Holding(CTRL),
        When::Always,
        action,
        help,
    )
}

use Help::{Hidden, Row, Same};
use KeyAction as A;
use KeyCode as K;
use Scope as S;

/// The table, in the help overlay's order. Within a scope the first entry that matches (and
/// whose condition holds) wins.
#[rustfmt::skip]
pub const KEYS: &[Binding] = &[
    // While a Ctrl+R search is under way these come first (listed with Ctrl+R below).
    bind(S::Input, K::Enter, Mods::Any, When::Searching, A::AcceptSearch, Hidden),
    bind(S::Input, K::Esc, Mods::Any, When::Searching, A::CancelSearch, Hidden),
    bind(S::Input, K::Backspace, Mods::Any, When::Searching, A::SearchBackspace, Hidden),
    Binding { scope: S::Input, code: Code::AnyChar, mods: Mods::NoneOf(CTRL),
        when: When::Searching, action: A::SearchType, help: Hidden },
    bind(S::Input, K::Enter, Mods::NoneOf(ALT_SHIFT), When::Always, A::Submit,
        Row("Enter", "send (completion mode: continue the text)")),
    bind(S::Input, K::Enter, Mods::AnyOf(ALT_SHIFT), When::Always, A::NewLine,
        Row("Alt+Enter, Ctrl+J", "new line in the input")),
    ctrl(S::Input, 'j', A::NewLine, Same),
    key(S::Input, K::Up, A::HistoryBack, Row("Up / Down", "recall earlier inputs")),
    key(S::Input, K::Down, A::HistoryForward, Same),
    ctrl(S::Input, 'r', A::SearchHistory,
        Row("Ctrl+R", "search earlier inputs: type, Ctrl+R older, Enter takes, Esc")),
    bind(S::Input, K::Esc, Mods::Any, When::Editing, A::CancelEdit,
        Row("Esc", "while editing a turn: cancel the edit")),
    ctrl(S::Input, 'g', A::OpenEditor, Row("Ctrl+G, /edit", "the input in $EDITOR (else vi)")),
    key(S::Input, K::Left, A::CursorLeft, Row("← → Home End", "move in the input")),
    key(S::Input, K::Right, A::CursorRight, Same),
    key(S::Input, K::Home, A::CursorHome, Same),
    key(S::Input, K::End, A::CursorEnd, Same),
    key(S::Global, K::PageUp, A::PageUp, Row("PgUp / PgDn, wheel", "scroll the conversation")),
    key(S::Global, K::PageDown, A::PageDown, Same),
    key(S::Focus, K::Tab, A::ToggleFocus, Row("Tab", "to the sampling panel and back")),
    key(S::Focus, K::BackTab, A::ToggleFocus, Same),
    key(S::Panel, K::Up, A::PreviousControl,
        Row("↑↓, then ←→ or - +", "in the panel: pick a control, change it live")),
    key(S::Panel, K::Down, A::NextControl, Same),
    key(S::Panel, K::Left, A::Decrease, Same),
    key(S::Panel, K::Char('-'), A::Decrease, Same),
    key(S::Panel, K::Right, A::Increase, Same),
    key(S::Panel, K::Char('+'), A::Increase, Same),
    key(S::Panel, K::Char('='), A::Increase, Same),
    key(S::Panel, K::Esc, A::BackToInput, Hidden),
    key(S::Panel, K::Enter, A::BackToInput, Hidden),
    bind(S::Global, K::Esc, Mods::Any, When::Generating, A::Cancel,
        Row("Esc", "stop generating, keep the text")),
    ctrl(S::Global, 'c', A::CancelOrQuit, Row("Ctrl+C", "stop generating; quit when idle")),
    bind(S::Global, K::Char('r'), Mods::Holding(KeyModifiers::ALT), When::Always, A::Regenerate,
        Row("Alt+R, /regen", "regenerate the last reply")),
    ctrl(S::Global, 't', A::NextTheme, Row("Ctrl+T", "next theme")),
    key(S::Global, K::F(1), A::ShowHelp, Row("F1, ?, /help", "this help (? on an empty input)")),
    bind(S::Input, K::Char('?'), Mods::Any, When::InputEmpty, A::ShowHelp, Same),
    key(S::Global, K::F(2), A::ToggleMode,
        Row("F2, /mode chat|complete", "switch chat / completion mode")),
    bind(S::Input, K::Char('e'), Mods::Holding(CTRL), When::CompleteIdle, A::EditDocument,
        Row("Ctrl+E", "completion mode: edit the whole text")),
    key(S::Global, K::F(3), A::ToggleProbs, Row("F3, /probs", "colour tokens by their probability")),
    key(S::Global, K::F(4), A::CycleTokenView,
        Row("F4, /tokens", "the input as tokens (again: with ids)")),
    key(S::Global, K::F(5), A::ToggleAnatomy,
        Row("F5, /anatomy", "where the model's parameters sit")),
    key(S::Global, K::F(6), A::StartInspecting,
        Row("F6, /inspect", "token cursor on the last reply; in it:")),
    key(S::Inspect, K::Left, A::TokenLeft, Row("← → Home End", "move by token")),
    key(S::Inspect, K::Right, A::TokenRight, Same),
    key(S::Inspect, K::Home, A::TokenFirst, Same),
    key(S::Inspect, K::End, A::TokenLast, Same),
    bind(S::Inspect, K::Up, Mods::Any, When::Choosing, A::ChooseUp, Hidden),
    bind(S::Inspect, K::Down, Mods::Any, When::Choosing, A::ChooseDown, Hidden),
    key(S::Inspect, K::Up, A::PreviousReply, Row("↑ ↓", "previous / next reply")),
    key(S::Inspect, K::Down, A::NextReply, Same),
    bind(S::Inspect, K::Enter, Mods::Any, When::Choosing, A::Branch,
        Row("Enter", "choose an alternative (↑↓), Enter branches")),
    bind(S::Inspect, K::Enter, Mods::Any, When::HasAlternatives, A::StartChoosing, Same),
    key(S::Inspect, K::Char('b'), A::NextBranch, Row("b / B", "next / previous branch of the reply")),
    key(S::Inspect, K::Char('B'), A::PreviousBranch, Same),
    key(S::Inspect, K::Char('y'), A::CopyReply, Row("y", "copy the reply to the clipboard")),
    key(S::Inspect, K::Char('t'), A::ToggleTrace,
        Row("t", "sampler trace: what each stage kept or cut")),
    key(S::Inspect, K::Char('x'), A::BanToken,
        Row("x", "ban the token (or the one chosen): bias -inf")),
    key(S::Inspect, K::Char('a'), A::ToggleAttention,
        Row("a", "attention of the token over the text")),
    key(S::Inspect, K::Char('['), A::StepAttention,
        Row("[ ]  < >  m", "attention: layer, head, average of heads")),
    key(S::Inspect, K::Char(']'), A::StepAttention, Same),
    key(S::Inspect, K::Char('<'), A::StepAttention, Same),
    key(S::Inspect, K::Char('>'), A::StepAttention, Same),
    key(S::Inspect, K::Char(','), A::StepAttention, Same),
    key(S::Inspect, K::Char('.'), A::StepAttention, Same),
    key(S::Inspect, K::Char('m'), A::StepAttention, Same),
    bind(S::Inspect, K::Esc, Mods::Any, When::Choosing, A::StopChoosing,
        Row("Esc", "back; leaves the token cursor")),
    bind(S::Inspect, K::Esc, Mods::Any, When::AttentionOpen, A::CloseAttention, Same),
    key(S::Inspect, K::Esc, A::LeaveInspecting, Same),
    key(S::Inspect, K::F(6), A::LeaveInspecting, Same),
    bind(S::Global, K::Up, Mods::Holding(KeyModifiers::ALT), When::Always, A::StartSelecting,
        Row("Alt+↑", "message cursor on the last turn; in it:")),
    key(S::Messages, K::Up, A::MessageUp, Row("↑ ↓", "previous / next message")),
    key(S::Messages, K::Down, A::MessageDown, Same),
    key(S::Messages, K::Char('e'), A::EditMessage,
        Row("e, Enter", "edit it: Enter replaces it and writes on from there")),
    key(S::Messages, K::Enter, A::EditMessage, Same),
    key(S::Messages, K::Char('b'), A::NextVersion,
        Row("b / B", "next / previous version from this turn (made by edits)")),
    key(S::Messages, K::Char('B'), A::PreviousVersion, Same),
    key(S::Messages, K::Char('y'), A::CopyReply, Row("y", "copy the message to the clipboard")),
    key(S::Messages, K::Esc, A::LeaveMessages, Row("Esc", "leave the message cursor")),
    key(S::Sessions, K::Up, A::PickerUp, Row("↑ ↓", "pick a saved conversation")),
    key(S::Sessions, K::Down, A::PickerDown, Same),
    key(S::Sessions, K::Char('k'), A::PickerUp, Same),
    key(S::Sessions, K::Char('j'), A::PickerDown, Same),
    key(S::Sessions, K::Enter, A::PickerOpen, Row("Enter", "open it")),
    key(S::Sessions, K::Char('d'), A::PickerDelete, Row("d, Delete", "delete it (y confirms)")),
    key(S::Sessions, K::Delete, A::PickerDelete, Same),
    key(S::Sessions, K::Esc, A::PickerClose, Row("Esc, q", "close the list")),
    key(S::Sessions, K::Char('q'), A::PickerClose, Same),
    key(S::Confirm, K::Char('y'), A::Yes, Hidden),
    key(S::Confirm, K::Char('Y'), A::Yes, Hidden),
    key(S::Help, K::Up, A::HelpUp, Hidden),
    key(S::Help, K::Down, A::HelpDown, Hidden),
    key(S::Help, K::PageUp, A::HelpPageUp, Hidden),
    key(S::Help, K::PageDown, A::HelpPageDown, Hidden),
    Binding { scope: S::Input, code: Code::AnyChar, mods: Mods::NoneOf(CTRL), when: When::Always,
        action: A::Type, help: Hidden },
    key(S::Input, K::Backspace, A::Backspace, Hidden),
    key(S::Input, K::Delete, A::Delete, Hidden),
];

impl Binding {
    fn matches(&self, key: &KeyEvent) -> bool {
        let code = match self.code {
            Code::Is(code) => code == key.code,
            Code::AnyChar => matches!(key.code, KeyCode::Char(_)),
        };
        let mods = match self.mods {
            Mods::Any => true,
            Mods::Holding(m) => key.modifiers.contains(m),
            Mods::AnyOf(m) => key.modifiers.intersects(m),
            Mods::NoneOf(m) => !key.modifiers.intersects(m),
        };
        code && mods
    }
}

/// The action of the first binding in `scope` that matches `key` and whose condition `holds`.
pub fn lookup(scope: Scope, key: &KeyEvent, holds: impl Fn(When) -> bool) -> Option<KeyAction> {
    KEYS.iter()
        .filter(|b| b.scope == scope && b.matches(key))
        .find(|b| holds(b.when))
        .map(|b| b.action)
}

/// The command whose picker's keys ([`Scope::Sessions`]) the help lists under it.
const PICKER_COMMAND: &str = "/sessions";

/// The help rows of one scope's bindings, indented.
fn scope_rows(scope: Scope) -> impl Iterator<Item = (String, String)> {
    KEYS.iter()
        .filter(move |b| b.scope == scope)
        .filter_map(|b| match b.help {
            Row(keys, what) => Some((format!("  {keys}"), what.to_string())),
            _ => None,
        })
}

/// The help overlay's rows (keys, what they do): each key row in the table's order (the token
/// cursor's indented under F6), a command listed beside a key after that key's row, then the
/// commands that have no key.
pub fn help() -> &'static [(String, String)] {
    static ROWS: OnceLock<Vec<(String, String)>> = OnceLock::new();
    ROWS.get_or_init(|| {
        let mut rows = Vec::new();
        let commands = |rows: &mut Vec<(String, String)>, listed: Listed| {
            for command in slash::COMMANDS.iter().filter(|c| c.listed == listed) {
                for (i, line) in command.help.iter().enumerate() {
                    let usage = if i == 0 { command.usage } else { "" };
                    rows.push((usage.to_string(), line.to_string()));
                }
                if command.usage.starts_with(PICKER_COMMAND) {
                    rows.extend(scope_rows(Scope::Sessions));
                }
            }
        };
        for binding in KEYS.iter().filter(|b| b.scope != Scope::Sessions) {
            if let Row(keys, what) = binding.help {
                let indent = if matches!(binding.scope, Scope::Inspect | Scope::Messages) {
                    "  "
                } else {
                    ""
                };
                rows.push((format!("{indent}{keys}"), what.to_string()));
                commands(&mut rows, Listed::After(keys));
            }
        }
        commands(&mut rows, Listed::Alone);
        rows
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: KeyModifiers = KeyModifiers::NONE;

    #[test]
    fn every_row_of_the_help_names_its_keys_once() {
        let rows = help();
        assert_eq!(rows.first().map(|r| r.0.as_str()), Some("Enter"));
        assert!(rows.iter().any(|(k, _)| k == "/theme NAME"));
        let ctrl_t = rows.iter().position(|(k, _)| k == "Ctrl+T").unwrap();
        assert_eq!(rows[ctrl_t + 1].0, "/theme NAME");
    }

    #[test]
    fn the_first_matching_binding_whose_condition_holds_wins() {
        let esc = KeyEvent::new(KeyCode::Esc, NONE);
        let holds = |w| w == When::AttentionOpen || w == When::Always;
        assert_eq!(
            lookup(Scope::Inspect, &esc, holds),
            Some(KeyAction::CloseAttention)
        );
        let q = KeyEvent::new(KeyCode::Char('?'), NONE);
        assert_eq!(
            lookup(Scope::Input, &q, |w| w == When::Always),
            Some(KeyAction::Type)
        );
        assert_eq!(
            lookup(Scope::Input, &q, |w| w != When::Searching),
            Some(KeyAction::ShowHelp)
        );
    }
}
