//! Scoring a text: mean negative log-likelihood, perplexity and bits per byte, with a sliding
//! window so texts longer than the context are scored with as much context as fits.
//!
//! Windows of `n_positions` tokens start every `stride` tokens; each token after the first is
//! scored exactly once, in the first window that reaches it, with the context from that
//! window's start (the definition `tools/make_fixtures.py` uses for the reference values).

use serde::Serialize;

use crate::error::{Error, Result};
use crate::generate::session::Session;
use crate::generate::token_score::token_score;
pub use crate::generate::token_score::TokenScore;
use crate::kernels::activations::log_sum_exp_f64;
use crate::model::KvCache;

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
    /// Positions run through the model: each window's tokens, so about `tokens * window /
    /// stride` with overlapping windows. Per second, the speed to set beside a prompt's.
    pub positions_run: usize,
    /// Time in the model (after loading and tokenizing).
    pub seconds: f64,
    /// Scored tokens per second.
    pub tokens_per_second: f64,
    pub positions_per_second: f64,
}

/// How long the windows took, and how many positions they ran.
#[derive(Debug, Clone, Copy)]
struct Work {
    positions: usize,
    seconds: f64,
}

/// Checks the stride and tokenizes `text`; the sliding window needs at least two tokens.
fn prepare(session: &Session, text: &str, stride: Option<usize>) -> Result<(Vec<u32>, usize)> {
    let stride = check_stride(session, stride)?;
    let ids = session.tokenizer().encode(text)?;
    if ids.len() < 2 {
        return Err(Error::Usage(format!(
            "the text has {} token(s); scoring needs at least 2",
            ids.len()
        )));
    }
    Ok((ids, stride))
}

/// The stride, by default half the window; it must be 1 to the window.
fn check_stride(session: &Session, stride: Option<usize>) -> Result<usize> {
    let window = session.window();
    let stride = stride.unwrap_or((window / 2).max(1));
    if stride == 0 || stride > window {
        return Err(Error::Usage(format!(
            "--stride {stride} is out of range (1 to the window, {window})"
        )));
    }
    Ok(stride)
}

/// Runs the sliding window over `ids`: `per_row(i, logits)` for every token `i` after the
/// first, where `logits` is the row that predicts token `i`, from the first window that
/// reaches it; `visit(first, results)` gets each window's results, for tokens `first..`, in
/// order. Each window goes through [`crate::model::Gpt2::forward_rows`] (the CPU prompt pass,
/// with the head on the rows not yet scored only), so a window's logits are never all held.
fn for_each_window<T: Send>(
    session: &Session,
    ids: &[u32],
    stride: usize,
    per_row: impl Fn(usize, &[f32]) -> T + Sync,
    mut visit: impl FnMut(usize, Vec<T>) -> Result<()>,
) -> Result<Work> {
    let started = std::time::Instant::now();
    let mut positions = 0;
    let window = session.window();
    let model = session.model();
    let mut cache = KvCache::new(model.config().n_layer, window);
    let mut prev_end = 0;
    let mut begin = 0;
    loop {
        let end = (begin + window).min(ids.len());
        let first = prev_end.max(begin + 1);
        cache.clear();
        // Row r of the window predicts token begin + r + 1.
        let rows = model.forward_rows(
            &ids[begin..end],
            &mut cache,
            first - 1 - begin..end - 1 - begin,
            |r, row| per_row(begin + r + 1, row),
        )?;
        visit(first, rows)?;
        positions += end - begin;
        prev_end = end;
        if end == ids.len() {
            return Ok(Work {
                positions,
                seconds: started.elapsed().as_secs_f64(),
            });
        }
        begin += stride;
    }
}

/// The negative log-likelihood of `target` under one row of logits, in f64.
fn nll_of(logits: &[f32], target: u32) -> f64 {
    log_sum_exp_f64(logits) - logits[target as usize] as f64
}

/// The text's perplexity and bits per byte (see the module doc for the window).
pub fn score(session: &Session, text: &str, stride: Option<usize>) -> Result<Score> {
    let (ids, stride) = prepare(session, text, stride)?;
    let mut nll_sum = 0f64;
    let nll = |i: usize, row: &[f32]| nll_of(row, ids[i]);
    let work = for_each_window(session, &ids, stride, nll, |_, nlls| {
        nll_sum = nlls.iter().fold(nll_sum, |sum, nll| sum + nll);
        Ok(())
    })?;
    Ok(summary(
        &ids,
        text.len(),
        nll_sum,
        session.window(),
        stride,
        work,
    ))
}

/// Scores every token of `text`: `visit(i, id, score)` is called for each token in order, with
/// `None` for the first (nothing precedes it). Returns the same summary as [`score`], to the
/// last digit (it is computed the same way); the per-token figures are computed in f64 from
/// each row of logits, so near-ties rank as they do in the logits.
pub fn score_tokens(
    session: &Session,
    text: &str,
    stride: Option<usize>,
    top: usize,
    visit: impl FnMut(usize, u32, Option<TokenScore>) -> Result<()>,
) -> Result<Score> {
    let (ids, stride) = prepare(session, text, stride)?;
    let (nll_sum, work) = visit_scores(session, &ids, stride, top, visit)?;
    Ok(summary(
        &ids,
        text.len(),
        nll_sum,
        session.window(),
        stride,
        work,
    ))
}

/// [`score_tokens`] for a text already in tokens (a prompt sent as token ids): the same
/// windows, the same figures. Any number of tokens will do: the first gets `None`, and one
/// token alone is all there is. Returns the summed negative log-likelihood.
pub fn score_ids(
    session: &Session,
    ids: &[u32],
    stride: Option<usize>,
    top: usize,
    visit: impl FnMut(usize, u32, Option<TokenScore>) -> Result<()>,
) -> Result<f64> {
    let stride = check_stride(session, stride)?;
    let vocab = session.config().vocab_size;
    if let Some(&bad) = ids.iter().find(|&&id| id as usize >= vocab) {
        return Err(Error::Usage(format!(
            "token id {bad} is not in the vocabulary (0 to {})",
            vocab - 1
        )));
    }
    Ok(visit_scores(session, ids, stride, top, visit)?.0)
}

/// Calls `visit` for every token of `ids` in order (`None` for the first) and sums the NLL.
fn visit_scores(
    session: &Session,
    ids: &[u32],
    stride: usize,
    top: usize,
    mut visit: impl FnMut(usize, u32, Option<TokenScore>) -> Result<()>,
) -> Result<(f64, Work)> {
    let none = Work {
        positions: 0,
        seconds: 0.0,
    };
    let Some(&first_id) = ids.first() else {
        return Ok((0.0, none));
    };
    visit(0, first_id, None)?;
    if ids.len() < 2 {
        return Ok((0.0, none));
    }
    let mut nll_sum = 0f64;
    let scored = |i: usize, row: &[f32]| (nll_of(row, ids[i]), token_score(row, ids[i], top));
    let work = for_each_window(session, ids, stride, scored, |first, scores| {
        for (i, (nll, score)) in (first..).zip(scores) {
            nll_sum += nll;
            visit(i, ids[i], Some(score))?;
        }
        Ok(())
    })?;
    Ok((nll_sum, work))
}

fn summary(
    ids: &[u32],
    bytes: usize,
    nll_sum: f64,
    window: usize,
    stride: usize,
    work: Work,
) -> Score {
    let tokens_scored = ids.len() - 1;
    let mean_nll = nll_sum / tokens_scored as f64;
    let per_second = |n: usize| n as f64 / work.seconds.max(f64::MIN_POSITIVE);
    Score {
        tokens: ids.len(),
        tokens_scored,
        bytes,
        nll_sum,
        mean_nll,
        perplexity: mean_nll.exp(),
        bits_per_byte: nll_sum / std::f64::consts::LN_2 / bytes as f64,
        window,
        stride,
        positions_run: work.positions,
        seconds: work.seconds,
        tokens_per_second: per_second(tokens_scored),
        positions_per_second: per_second(work.positions),
    }
}
