//! The bundled model: it loads from the bytes embedded in the binary, generates with the
//! default settings, its tokenizer round-trips the held-out plays, and the program runs on it
//! with no model files and no network.

mod common;

use candle_core::{DType, Device};
use gpt2_tui::generate::session::{GenerateOptions, Session, Step};
use gpt2_tui::generate::SamplingParams;
use gpt2_tui::weights::loader::{self, Bytes, TokenizerFiles, WeightFiles};
use gpt2_tui::weights::{bundled, source};

fn session() -> Session {
    let files = bundled::files().expect("this build has a bundled model");
    Session::new(loader::load(&files, &Device::Cpu, DType::F32).expect("the bundled model loads"))
}

fn heldout_plays() -> Vec<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/data/heldout");
    let mut plays: Vec<(String, String)> = std::fs::read_dir(dir)
        .expect("data/heldout")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p.display().to_string(), text)
        })
        .collect();
    plays.sort();
    assert!(plays.len() >= 2, "at least two held-out plays");
    plays
}

#[test]
fn bundled_files_are_embedded_not_read_from_disk() {
    let files = bundled::files().unwrap();
    assert!(matches!(files.config, Bytes::Static(_)));
    assert!(matches!(
        &files.weights,
        WeightFiles::Safetensors(w) if w.len() == 1 && matches!(w[0], Bytes::Static(_))
    ));
    assert!(matches!(
        files.tokenizer,
        TokenizerFiles::Json(Bytes::Static(_))
    ));
    // `--model bundled` names it.
    assert_eq!(source::resolve("bundled").unwrap().name, files.name);
}

#[test]
fn bundled_model_generates_with_default_settings() {
    let mut session = session();
    assert_eq!(session.tokenizer().eos_id(), Some(session.eos_id()));
    let prompt = session.tokenizer().encode("To be, or not to be").unwrap();
    let params = SamplingParams {
        max_tokens: 24,
        ..SamplingParams::default()
    };
    let mut generation = session
        .generate(&prompt, GenerateOptions::default(), Some(42))
        .unwrap();
    let mut text = String::new();
    let mut tokens = 0;
    loop {
        match generation.step(&params).unwrap() {
            Step::Token(token) => {
                tokens += 1;
                text.push_str(&token.text);
            }
            Step::Done { text: rest, .. } => {
                text.push_str(&rest);
                break;
            }
        }
    }
    assert!(tokens > 0 && tokens <= 24);
    // Words of English, not noise: mostly letters, spaces and punctuation.
    let letters = text.chars().filter(|c| c.is_ascii_alphabetic()).count();
    assert!(letters * 2 > text.len(), "{text:?}");
}

#[test]
fn tokenizer_round_trips_the_heldout_plays() {
    let session = session();
    let tokenizer = session.tokenizer();
    for (name, text) in heldout_plays() {
        let ids = tokenizer.encode(&text).unwrap();
        assert!(
            ids.len() * 2 < text.len(),
            "{name}: fewer than 2 bytes per token"
        );
        assert_eq!(tokenizer.decode(&ids), text, "{name}");
    }
}

#[test]
fn bundled_model_predicts_heldout_text() {
    // A quality floor, far from the model card's full measurement: the opening of a held-out
    // play must cost well under the 8 bits per byte of no model at all.
    let session = session();
    let (_, text) = heldout_plays().remove(0);
    let excerpt = &text[..text.len().min(3000)];
    let score = gpt2_tui::generate::perplexity::score(&session, excerpt, None).unwrap();
    assert!(score.bits_per_byte < 3.5, "{score:?}");
    // The speed is of the positions the windows ran: every window's tokens, overlaps included.
    let (window, stride, n) = (score.window, score.stride, score.tokens);
    let run: usize = (0..)
        .map(|w| w * stride)
        .take_while(|&begin| begin == 0 || begin + window - stride < n)
        .map(|begin| (begin + window).min(n) - begin)
        .sum();
    assert!(n > window, "the excerpt needs several windows");
    assert_eq!(score.positions_run, run, "{score:?}");
    assert!(score.seconds > 0.0 && score.positions_per_second > score.tokens_per_second);
}

#[test]
fn the_program_runs_on_the_bundled_model_by_default() {
    let (code, stdout, stderr) = common::run_cli(
        &["--max-tokens", "12", "--seed", "1"],
        b"To be, or not to be\n",
    );
    assert_eq!(code, 0, "stderr: {stderr}");
    assert!(!stdout.trim().is_empty(), "stderr: {stderr}");
}
