//! GPT-2's byte-level BPE tokenizer, from `tokenizer.json` or `vocab.json` + `merges.txt`.

use std::path::Path;

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer as HfTokenizer};

use crate::error::{Error, Result};

pub const END_OF_TEXT: &str = "<|endoftext|>";

/// A token with the byte range of the input text it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSpan {
    pub id: u32,
    pub start: usize,
    pub end: usize,
}

pub struct Tokenizer {
    inner: HfTokenizer,
    /// The raw bytes each token stands for; streaming decodes from these so that a
    /// token holding half a UTF-8 character is never printed as garbage.
    token_bytes: Vec<Vec<u8>>,
    eos_id: Option<u32>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("eos_id", &self.eos_id)
            .finish()
    }
}

impl Tokenizer {
    pub fn from_json_file(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_json_bytes(&bytes, &path.display().to_string())
    }

    /// `origin` names the source in error messages.
    pub fn from_json_bytes(bytes: &[u8], origin: &str) -> Result<Self> {
        let inner = HfTokenizer::from_bytes(bytes).map_err(|e| Error::Tokenizer {
            file: origin.to_string(),
            message: format!("not a valid tokenizer.json: {e}"),
        })?;
        Self::from_hf(inner, origin)
    }

    /// The original GPT-2 files: `vocab.json` and `merges.txt`.
    pub fn from_vocab_merges(vocab: &Path, merges: &Path) -> Result<Self> {
        let origin = vocab.display().to_string();
        let bpe = BPE::from_file(&origin, &merges.display().to_string())
            .build()
            .map_err(|e| Error::Tokenizer {
                file: format!("{} + {}", vocab.display(), merges.display()),
                message: e.to_string(),
            })?;
        Self::from_bpe(bpe, &[END_OF_TEXT], &origin)
    }

    /// A byte-level BPE (GPT-2's pre-tokenizer and decoder) over `bpe`, with those of
    /// `special` that are in its vocabulary as special tokens.
    pub fn from_bpe(bpe: BPE, special: &[&str], origin: &str) -> Result<Self> {
        let mut inner = HfTokenizer::new(bpe);
        inner
            .with_pre_tokenizer(Some(ByteLevel::new(false, true, true)))
            .with_decoder(Some(ByteLevelDecoder::default()));
        let special: Vec<AddedToken> = special
            .iter()
            .filter(|token| inner.token_to_id(token).is_some())
            .map(|token| AddedToken::from(token.to_string(), true))
            .collect();
        inner.add_special_tokens(&special);
        Self::from_hf(inner, origin)
    }

    /// Wraps a `tokenizers` object, e.g. one just trained.
    pub fn from_hf(inner: HfTokenizer, origin: &str) -> Result<Self> {
        let byte_of = unicode_to_byte();
        let size = inner.get_vocab_size(true);
        let mut token_bytes = Vec::with_capacity(size);
        // A copy of the added tokens' table: asked once, not once per token.
        let added = inner.get_added_tokens_decoder();
        for id in 0..size as u32 {
            let piece = inner.id_to_token(id).unwrap_or_default();
            let is_special = added.get(&id).is_some_and(|t| t.special);
            let bytes = if is_special {
                piece.into_bytes()
            } else {
                piece
                    .chars()
                    .map(&byte_of)
                    .collect::<Option<Vec<u8>>>()
                    .ok_or_else(|| Error::Tokenizer {
                        file: origin.to_string(),
                        message: format!(
                            "token {id} ({piece:?}) is not byte-level BPE; GPT-2 models need a byte-level tokenizer"
                        ),
                    })?
            };
            token_bytes.push(bytes);
        }
        let eos_id = inner.token_to_id(END_OF_TEXT);
        Ok(Self {
            inner,
            token_bytes,
            eos_id,
        })
    }

    /// Number of token ids, special tokens included.
    pub fn vocab_size(&self) -> usize {
        self.token_bytes.len()
    }

    /// Id of `<|endoftext|>`, if the vocabulary has it.
    pub fn eos_id(&self) -> Option<u32> {
        self.eos_id
    }

    /// Encodes text as the model sees it: no added BOS/EOS, `<|endoftext|>` in the text is the
    /// special token.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.encode_spans(text)?.into_iter().map(|s| s.id).collect())
    }

    /// Encodes with the byte range of the input each token covers.
    pub fn encode_spans(&self, text: &str) -> Result<Vec<TokenSpan>> {
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|e| Error::Tokenizer {
                file: "tokenizer".into(),
                message: e.to_string(),
            })?;
        Ok(encoding
            .get_ids()
            .iter()
            .zip(encoding.get_offsets())
            .map(|(&id, &(start, end))| TokenSpan { id, start, end })
            .collect())
    }

    /// The bytes a token stands for (empty for an unknown id).
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.token_bytes
            .get(id as usize)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The text of one token as shown on its own (bytes that are not UTF-8 by themselves, such
    /// as half a character, become U+FFFD).
    pub fn token_text(&self, id: u32) -> String {
        String::from_utf8_lossy(self.token_bytes(id)).into_owned()
    }

    /// Decodes a whole sequence; invalid UTF-8 (a cut character) becomes U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids
            .iter()
            .flat_map(|&id| self.token_bytes(id).iter().copied())
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The underlying `tokenizers` object, for saving.
    pub fn hf(&self) -> &HfTokenizer {
        &self.inner
    }
}

/// GPT-2's byte-to-unicode table, inverted: byte-level BPE writes every byte as a printable
/// character, with the unprintable ones moved to U+0100 and up.
fn unicode_to_byte() -> impl Fn(char) -> Option<u8> {
    let mut table = [None; 512];
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut next = 256u32;
    for b in 0..=255u8 {
        let c = if printable(b) {
            b as u32
        } else {
            next += 1;
            next - 1
        };
        table[c as usize] = Some(b);
    }
    move |c: char| table.get(c as usize).copied().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_is_a_bijection() {
        let byte_of = unicode_to_byte();
        assert_eq!(byte_of('!'), Some(b'!'));
        assert_eq!(byte_of('Ġ'), Some(b' '));
        assert_eq!(byte_of('Ċ'), Some(b'\n'));
        let mapped: std::collections::HashSet<u8> = (0..512u32)
            .filter_map(|c| byte_of(char::from_u32(c).unwrap()))
            .collect();
        assert_eq!(mapped.len(), 256);
    }
}
