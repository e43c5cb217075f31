//! Scoring a text: mean negative log-likelihood, perplexity and bits per byte, with a sliding
//! window so texts longer than the context are scored with as much context as fits.
//!
//! Windows of `n_positions` tokens start every `stride` tokens; each token after the first is
//! scored exactly once, in the first window that reaches it, with the context from that
//! window's start (the definition `tools/make_fixtures.py` uses for the reference values).

use candle_core::{Tensor, D};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::generate::session::Session;
use crate::model::Mode;

#[derive(Debug, Clone, Serialize)]
pub struct Score {
    pub tokens: usize,
    pub tokens_scored: usize,
    pub bytes: usize,
    pub nll_sum: f64,
    pub mean_nll: f64,
    pub perplexity: f64,
    pub bits_per_byte: f64,
    pub window: usize,
    pub stride: usize,
}

pub fn score(session: &Session, text: &str, stride: Option<usize>) -> Result<Score> {
    let window = session.window();
    let stride = stride.unwrap_or((window / 2).max(1));
    if stride == 0 || stride > window {
        return Err(Error::Usage(format!(
            "--stride {stride} is out of range (1 to the window, {window})"
        )));
    }
    let ids = session.tokenizer().encode(text)?;
    if ids.len() < 2 {
        return Err(Error::Usage(format!(
            "the text has {} token(s); scoring needs at least 2",
            ids.len()
        )));
    }
    let model = session.model();
    let mut nll_sum = 0f64;
    let mut prev_end = 0;
    let mut begin = 0;
    loop {
        let end = (begin + window).min(ids.len());
        let input = Tensor::new(&ids[begin..end], model.device())?.unsqueeze(0)?;
        let logits = model.forward_all(&input, Mode::Inference)?.squeeze(0)?;
        let first = prev_end.max(begin + 1);
        // Row r of the logits predicts token begin + r + 1.
        let rows = logits.narrow(0, first - 1 - begin, end - first)?;
        let log_probs = candle_nn::ops::log_softmax(&rows, D::Minus1)?;
        let targets = Tensor::new(&ids[first..end], model.device())?.unsqueeze(1)?;
        let picked: Vec<f32> = log_probs.gather(&targets, 1)?.flatten_all()?.to_vec1()?;
        nll_sum -= picked.iter().map(|&x| x as f64).sum::<f64>();
        prev_end = end;
        if end == ids.len() {
            break;
        }
        begin += stride;
    }
    let tokens_scored = ids.len() - 1;
    let bytes = text.len();
    let mean_nll = nll_sum / tokens_scored as f64;
    Ok(Score {
        tokens: ids.len(),
        tokens_scored,
        bytes,
        nll_sum,
        mean_nll,
        perplexity: mean_nll.exp(),
        bits_per_byte: nll_sum / std::f64::consts::LN_2 / bytes as f64,
        window,
        stride,
    })
}
