//! The training data: the Shakespeare texts under `data/`, cleaned, split into training and
//! held-out plays, and turned into two token streams — the plain text (completion mode) and the
//! speeches as DialoGPT turns separated by `<|endoftext|>` (chat mode).

use std::path::{Path, PathBuf};

use gpt2_tui::tokenizer::END_OF_TEXT;
use rand::Rng;
use tokenizers::models::bpe::{BpeTrainer, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::AddedToken;

/// One text of the corpus.
#[derive(Debug, Clone)]
pub struct Text {
    /// File stem, e.g. `hamlet_gut`.
    pub name: String,
    /// The text with any Project Gutenberg header and footer removed.
    pub body: String,
}

/// Reads every `*.txt` in `dir`, sorted by name so the order never depends on the file system.
pub fn read_dir(dir: &Path) -> anyhow::Result<Vec<Text>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        anyhow::bail!("{}: no .txt files", dir.display());
    }
    paths
        .into_iter()
        .map(|path| {
            let raw = std::fs::read_to_string(&path)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            Ok(Text {
                name: path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                body: strip_gutenberg(&raw),
            })
        })
        .collect()
}

/// Removes Project Gutenberg's licence header and footer, if the text has them: everything up
/// to the `*** START OF ...` line and from the `*** END OF ...` (or `End of the Project
/// Gutenberg ...`) line on. Line endings become `\n`; surrounding blank lines are trimmed.
pub fn strip_gutenberg(raw: &str) -> String {
    let text = raw.replace("\r\n", "\n");
    let lines: Vec<&str> = text.lines().collect();
    let is_start = |l: &str| {
        let l = l.trim_start().to_ascii_uppercase();
        l.starts_with("*** START OF") || l.starts_with("***START OF")
    };
    let is_end = |l: &str| {
        let u = l.trim_start().to_ascii_uppercase();
        u.starts_with("*** END OF")
            || u.starts_with("***END OF")
            || u.starts_with("END OF THE PROJECT GUTENBERG")
            || u.starts_with("END OF PROJECT GUTENBERG")
    };
    let begin = lines.iter().position(|l| is_start(l)).map_or(0, |i| i + 1);
    let end = lines[begin..]
        .iter()
        .position(|l| is_end(l))
        .map_or(lines.len(), |i| begin + i);
    let body = lines[begin..end].join("\n");
    let body = body.trim_matches('\n');
    let mut out = body.to_string();
    out.push('\n');
    out
}

/// A line that names who speaks (`Ham.`, `FIRST WITCH.`, `Lady M.`, `THESEUS`): short, ends
/// with a full stop or is in capitals, and is not an act or scene heading.
fn is_speaker_tag(line: &str) -> bool {
    let l = line.trim();
    let letters = l.chars().filter(char::is_ascii_alphabetic).count();
    // `THESEUS` (no full stop) in a few plays.
    let shouted = letters >= 2 && !l.chars().any(|c| c.is_ascii_lowercase());
    if l.len() < 2 || l.len() > 32 || !(l.ends_with('.') || shouted) || l.starts_with('[') {
        return false;
    }
    let upper = l.to_ascii_uppercase();
    if [
        "ACT ",
        "SCENE",
        "PROLOGUE",
        "EPILOGUE",
        "INDUCTION",
        "THE END",
    ]
    .iter()
    .any(|h| upper.starts_with(h))
    {
        return false;
    }
    let first = l.chars().next().unwrap_or(' ');
    (first.is_ascii_uppercase() || first.is_ascii_digit())
        && l.split_whitespace().count() <= 4
        && l.chars()
            .all(|c| c.is_ascii_alphanumeric() || " .'&-,".contains(c))
}

/// Removes `[stage directions]`, which may span lines, and the lines they leave empty; runs of
/// spaces become one.
fn strip_directions(text: &str) -> String {
    let mut kept = String::with_capacity(text.len());
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '[' => depth += 1,
            ']' if depth > 0 => depth -= 1,
            _ if depth == 0 => kept.push(c),
            _ => {}
        }
    }
    kept.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The speeches of a play in order, without speaker names or stage directions: each one a
/// chat turn. A text with no dialogue (the sonnets, the poems) has none.
pub fn speeches(body: &str) -> Vec<String> {
    let blocks: Vec<Vec<&str>> = body
        .split("\n\n")
        .map(|b| {
            b.lines()
                .filter(|l| !l.trim().is_empty())
                .collect::<Vec<_>>()
        })
        .filter(|b| !b.is_empty())
        .collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < blocks.len() {
        let block = &blocks[i];
        i += 1;
        if !is_speaker_tag(block[0]) {
            continue;
        }
        let mut lines: Vec<&str> = block[1..].to_vec();
        // `CHORUS.` on its own, the speech after a blank line.
        if lines.is_empty() && i < blocks.len() && !is_speaker_tag(blocks[i][0]) {
            lines = blocks[i].clone();
            i += 1;
        }
        let speech = strip_directions(&lines.join("\n"));
        if !speech.is_empty() {
            out.push(speech);
        }
    }
    out
}

/// A token stream to draw training windows from.
#[derive(Debug, Clone, Default)]
pub struct Stream {
    pub tokens: Vec<u32>,
    pub bytes: usize,
}

impl Stream {
    /// A random window of `len + 1` tokens (inputs and the targets shifted by one).
    pub fn window(&self, len: usize, rng: &mut impl Rng) -> &[u32] {
        let start = rng.random_range(0..self.tokens.len() - len);
        &self.tokens[start..start + len + 1]
    }

    /// Bytes of text per token: converts a loss per token into bits per byte.
    pub fn bytes_per_token(&self) -> f64 {
        self.bytes as f64 / self.tokens.len() as f64
    }
}

/// The plain texts, each followed by `<|endoftext|>`.
pub fn plain_stream(
    texts: &[Text],
    encode: &dyn Fn(&str) -> anyhow::Result<Vec<u32>>,
    eos: u32,
) -> anyhow::Result<Stream> {
    let mut stream = Stream::default();
    for text in texts {
        stream.tokens.extend(encode(&text.body)?);
        stream.tokens.push(eos);
        stream.bytes += text.body.len();
    }
    Ok(stream)
}

/// Every speech a turn, each followed by `<|endoftext|>` (the DialoGPT format).
pub fn chat_stream(
    texts: &[Text],
    encode: &dyn Fn(&str) -> anyhow::Result<Vec<u32>>,
    eos: u32,
) -> anyhow::Result<Stream> {
    let mut stream = Stream::default();
    for text in texts {
        for speech in speeches(&text.body) {
            stream.tokens.extend(encode(&speech)?);
            stream.tokens.push(eos);
            stream.bytes += speech.len();
        }
    }
    Ok(stream)
}

/// A GPT-2-style byte-level BPE (same pre-tokenizer and decoder) with `<|endoftext|>` as id 0.
pub fn train_bpe<'a>(
    vocab_size: usize,
    texts: impl Iterator<Item = &'a str> + Send,
) -> anyhow::Result<tokenizers::Tokenizer> {
    let trainer = BpeTrainer::builder()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(vec![AddedToken::from(END_OF_TEXT, true)])
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let mut trainer: TrainerWrapper = trainer.into();
    let mut tokenizer = tokenizers::Tokenizer::new(BPE::default());
    tokenizer
        .with_pre_tokenizer(Some(ByteLevel::new(false, true, true)))
        .with_decoder(Some(ByteLevel::new(false, true, true)));
    tokenizer
        .train(&mut trainer, texts)
        .map_err(anyhow::Error::msg)?;
    tokenizer.add_special_tokens(&[AddedToken::from(END_OF_TEXT, true)]);
    Ok(tokenizer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_gutenberg_boilerplate() {
        let raw = "The Project Gutenberg EBook\r\nlicence\r\n*** START OF THIS PROJECT GUTENBERG EBOOK X ***\r\n\r\nHAMLET\r\n\r\nHam.\r\nTo be.\r\n\r\n*** END OF THIS PROJECT GUTENBERG EBOOK X ***\r\nmore licence\r\n";
        assert_eq!(strip_gutenberg(raw), "HAMLET\n\nHam.\nTo be.\n");
        assert_eq!(strip_gutenberg("Plain.\n\n"), "Plain.\n");
    }

    #[test]
    fn speeches_drop_names_and_directions() {
        let play = "ACT I.\n\nScene I. Elsinore.\n\n[Enter Bernardo.]\n\nBer.\nWho's there?\n\nFran.\nNay, answer me: [Aside.] stand,\nand unfold yourself.\n\n[Exit.]\n\nCHORUS.\n\nO for a Muse of fire!\n\nFIRST WITCH.\nWhen shall we three meet again?\n";
        assert_eq!(
            speeches(play),
            vec![
                "Who's there?",
                "Nay, answer me: stand,\nand unfold yourself.",
                "O for a Muse of fire!",
                "When shall we three meet again?",
            ]
        );
    }
}
