//! Streaming bytes to text without ever printing half a UTF-8 character.

/// Collects token bytes and releases only complete characters. Bytes that can never form a
/// character become U+FFFD, as in a lossy decode of the whole text.
#[derive(Debug, Default, Clone)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(text) => {
                    out.push_str(text);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(std::str::from_utf8(&self.pending[..valid]).expect("checked"));
                    match e.error_len() {
                        // An incomplete character at the end: hold it back.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// Releases whatever is held at the end of a stream (an unfinished character becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        let rest = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_back_a_split_character() {
        let mut s = Utf8Stream::default();
        let snowman = "☃".as_bytes();
        assert_eq!(s.push(&[b'a', snowman[0]]), "a");
        assert_eq!(s.push(&snowman[1..2]), "");
        assert_eq!(s.push(&snowman[2..]), "☃");
    }

    #[test]
    fn every_split_of_every_text_streams_to_the_lossless_text() {
        let text = "naïve 日本 🤖 ok";
        let bytes = text.as_bytes();
        for cut1 in 0..bytes.len() {
            for cut2 in cut1..bytes.len() {
                let mut s = Utf8Stream::default();
                let mut out = s.push(&bytes[..cut1]);
                out += &s.push(&bytes[cut1..cut2]);
                out += &s.push(&bytes[cut2..]);
                out += &s.finish();
                assert_eq!(out, text);
            }
        }
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let mut s = Utf8Stream::default();
        assert_eq!(s.push(&[b'a', 0xFF, b'b']), "a\u{FFFD}b");
        assert_eq!(s.push(&[0xE2, 0x98]), "");
        assert_eq!(s.finish(), "\u{FFFD}");
    }
}
