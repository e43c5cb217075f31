//! The slash commands typed in the input (`/set`, `/mode`, `/save`, ...): parsed into a
//! [`Command`] without touching the state, and listed (usage and help) for the help overlay.

use crate::engine::chat::ChatFormat;
use crate::generate::bias::LogitBias;

/// A parsed slash command; the state carries it out.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Set {
        name: String,
        value: String,
    },
    Bias(BiasCommand),
    ChatMode,
    CompleteMode,
    Format {
        format: ChatFormat,
        name: String,
    },
    System(String),
    Regenerate,
    Undo,
    Clear,
    Save(String),
    Load(String),
    Export(String),
    Sessions,
    Resume(String),
    New,
    Rename(String),
    Delete,
    Theme(String),
    Help,
    Probs,
    Tokens,
    Anatomy,
    Inspect,
    /// `/copy` (the reply under a cursor, or the last), `/copy all` (the chat as Markdown).
    Copy {
        all: bool,
    },
    Edit,
    Read(String),
    Quit,
}

/// What `/bias` asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum BiasCommand {
    /// `/bias`: say which are set.
    List,
    /// `/bias clear`: remove them all.
    Clear,
    /// `/bias TOKEN=BIAS`: add it, or replace the token's bias; a bias of 0 removes it.
    Set(LogitBias),
}

/// Parses the text after the `/` (already trimmed); `Err` is the message to show.
pub fn parse(line: &str) -> Result<Command, String> {
    let (name, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let rest = rest.trim();
    Ok(match name {
        "set" => {
            let mut parts = rest.split_whitespace();
            match (parts.next(), parts.next()) {
                (Some(name), Some(value)) => Command::Set {
                    name: name.into(),
                    value: value.into(),
                },
                _ => return Err("usage: /set NAME VALUE".into()),
            }
        }
        "bias" => Command::Bias(match rest {
            "" => BiasCommand::List,
            "clear" => BiasCommand::Clear,
            entry => BiasCommand::Set(
                entry
                    .parse()
                    .map_err(|e| format!("{e} (usage: /bias TOKEN=BIAS, /bias clear)"))?,
            ),
        }),
        "mode" => match rest {
            "chat" => Command::ChatMode,
            "complete" | "completion" => Command::CompleteMode,
            _ => return Err("usage: /mode chat|complete".into()),
        },
        "format" => match rest {
            "dialogpt" | "transcript" => Command::Format {
                format: ChatFormat::choose(rest, ""),
                name: rest.into(),
            },
            _ => return Err("usage: /format dialogpt|transcript".into()),
        },
        "system" => Command::System(rest.into()),
        "regen" => Command::Regenerate,
        "undo" => Command::Undo,
        "clear" => Command::Clear,
        "save" => Command::Save(rest.into()),
        "load" => Command::Load(rest.into()),
        "export" => Command::Export(rest.into()),
        "sessions" => Command::Sessions,
        "resume" => Command::Resume(rest.into()),
        "new" => Command::New,
        "rename" => Command::Rename(rest.into()),
        "delete" => Command::Delete,
        "theme" => Command::Theme(rest.into()),
        "help" => Command::Help,
        "probs" => Command::Probs,
        "tokens" => Command::Tokens,
        "anatomy" => Command::Anatomy,
        "inspect" => Command::Inspect,
        "copy" => match rest {
            "" => Command::Copy { all: false },
            "all" => Command::Copy { all: true },
            _ => return Err("usage: /copy, /copy all".into()),
        },
        "edit" => Command::Edit,
        "read" => Command::Read(rest.into()),
        "quit" | "exit" => Command::Quit,
        other => return Err(format!("unknown command /{other} (F1 lists them)")),
    })
}

/// Where the help overlay lists a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listed {
    /// On the row of a key that does the same (`Alt+R, /regen`).
    WithKey,
    /// On its own row, after the row of these keys.
    After(&'static str),
    /// On its own row, after all the keys.
    Alone,
}

pub struct CommandHelp {
    pub usage: &'static str,
    /// What it does; more lines go on rows of their own.
    pub help: &'static [&'static str],
    pub listed: Listed,
}

const fn with_key(usage: &'static str) -> CommandHelp {
    CommandHelp {
        usage,
        help: &[],
        listed: Listed::WithKey,
    }
}

const fn alone(usage: &'static str, help: &'static [&'static str]) -> CommandHelp {
    CommandHelp {
        usage,
        help,
        listed: Listed::Alone,
    }
}

/// Every command, in the help overlay's order.
pub const COMMANDS: &[CommandHelp] = &[
    with_key("/regen"),
    CommandHelp {
        usage: "/theme NAME",
        help: &["dark, light, high-contrast, or your own"],
        listed: Listed::After("Ctrl+T"),
    },
    with_key("/help"),
    with_key("/mode chat|complete"),
    with_key("/probs"),
    with_key("/tokens"),
    with_key("/anatomy"),
    with_key("/inspect"),
    with_key("/edit"),
    alone(
        "/set NAME VALUE",
        &[
            "change a setting live; NAME is one of",
            "temperature top_k top_p min_p max_tokens",
            "repeat_penalty repeat_last_n seed (or random)",
        ],
    ),
    alone(
        "/bias TOKEN=BIAS",
        &[
            "logit bias: TOKEN an id or \"one token\",",
            "BIAS a number or -inf (banned), 0 removes;",
            "/bias lists them, /bias clear removes all",
        ],
    ),
    alone("/format dialogpt|transcript", &["chat prompt format"]),
    alone("/system TEXT", &["text before the chat (empty: none)"]),
    alone("/undo", &["remove the last exchange"]),
    alone("/clear", &["start over"]),
    alone(
        "/save PATH, /load PATH",
        &["transcript as JSON, with the settings"],
    ),
    alone("/export PATH", &["the conversation as Markdown"]),
    alone(
        "/sessions, /resume [ID]",
        &[
            "the saved conversations, to pick from;",
            "/resume opens one (the newest). In the list:",
        ],
    ),
    alone("/new", &["a fresh conversation (this one stays saved)"]),
    alone("/rename TEXT", &["the title the session list shows"]),
    alone("/delete", &["delete this conversation (y confirms)"]),
    alone(
        "/copy, /copy all",
        &[
            "the reply under the cursor (or the last), or",
            "the whole chat as Markdown, to the clipboard",
        ],
    ),
    alone("/read FILE", &["insert a file's text into the input"]),
    alone("/quit", &["quit"]),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_arguments() {
        assert_eq!(
            parse("set top_k 5"),
            Ok(Command::Set {
                name: "top_k".into(),
                value: "5".into()
            })
        );
        assert_eq!(parse("set top_k"), Err("usage: /set NAME VALUE".into()));
        assert_eq!(parse("mode completion"), Ok(Command::CompleteMode));
        assert_eq!(parse("mode"), Err("usage: /mode chat|complete".into()));
        assert_eq!(
            parse("system  be brief "),
            Ok(Command::System("be brief".into()))
        );
        assert_eq!(parse("save"), Ok(Command::Save(String::new())));
        assert_eq!(parse("exit"), Ok(Command::Quit));
        assert_eq!(
            parse("frobnicate x"),
            Err("unknown command /frobnicate (F1 lists them)".into())
        );
    }

    #[test]
    fn bias_lists_clears_and_parses_one_entry() {
        assert_eq!(parse("bias"), Ok(Command::Bias(BiasCommand::List)));
        assert_eq!(parse("bias  clear "), Ok(Command::Bias(BiasCommand::Clear)));
        let Ok(Command::Bias(BiasCommand::Set(b))) = parse("bias \" the\"=-inf") else {
            panic!("a quoted token with a space parses")
        };
        assert_eq!(b.to_string(), "\" the\"=-inf");
        assert_eq!(
            parse("bias 50256=0"),
            Ok(Command::Bias(BiasCommand::Set("50256=0".parse().unwrap())))
        );
        let e = parse("bias 12=abc").unwrap_err();
        assert!(e.contains("\"abc\"") && e.contains("usage: /bias"), "{e}");
        assert!(parse("bias the").unwrap_err().contains("TOKEN=BIAS"));
    }

    #[test]
    fn every_command_is_documented() {
        for usage in COMMANDS.iter().map(|c| c.usage) {
            let name = usage
                .trim_start_matches('/')
                .split([' ', ','])
                .next()
                .unwrap();
            let unknown = matches!(parse(name), Err(e) if e.starts_with("unknown"));
            assert!(!unknown, "{usage}");
        }
    }
}
