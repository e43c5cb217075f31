//! What the model made of one token, from the row of logits that predicted it: log-probability,
//! rank, entropy and the best alternatives (for `score`, the server's prompt logprobs and the
//! interface's view of the user's own text).

use crate::generate::sampling::top_ids;
use crate::kernels::activations::log_sum_exp_f64;

/// What the model made of one token of a text, from the distribution that predicted it.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenScore {
    /// Natural-log probability of the token (raw softmax).
    pub logprob: f32,
    /// 1 when the token was the model's first choice.
    pub rank: usize,
    /// Entropy of the predicting distribution, in nats.
    pub entropy: f32,
    /// The most likely tokens at this position, best first, as (id, logprob).
    pub top: Vec<(u32, f32)>,
}

/// Log-probability, rank, entropy and the best `top` of one row of logits for `target`.
pub(crate) fn token_score(logits: &[f32], target: u32, top: usize) -> TokenScore {
    let lse = log_sum_exp_f64(logits);
    let log_prob = |x: f32| x as f64 - lse;
    let target_logit = logits[target as usize];
    let rank = 1 + logits.iter().filter(|&&x| x > target_logit).count();
    let entropy = -logits
        .iter()
        .map(|&x| log_prob(x))
        .filter(|lp| lp.is_finite())
        .map(|lp| lp.exp() * lp)
        .sum::<f64>();
    let top = top_ids(logits, top)
        .into_iter()
        .map(|id| (id, log_prob(logits[id as usize]) as f32))
        .collect();
    TokenScore {
        logprob: log_prob(target_logit) as f32,
        rank,
        entropy: entropy as f32,
        top,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_score_ranks_and_measures_its_row() {
        let row = [2.0f32, 0.5, 1.0, -1.0];
        let lse = crate::generate::sampling::log_sum_exp(&row);
        let s = token_score(&row, 2, 2);
        assert_eq!(s.rank, 2);
        assert!((s.logprob - (1.0 - lse)).abs() < 1e-6);
        let p: Vec<f64> = row.iter().map(|&x| ((x - lse) as f64).exp()).collect();
        let h: f64 = -p.iter().map(|p| p * p.ln()).sum::<f64>();
        assert!((s.entropy as f64 - h).abs() < 1e-5);
        assert_eq!(s.top.iter().map(|t| t.0).collect::<Vec<_>>(), vec![0, 2]);
        assert_eq!(token_score(&row, 0, 0).rank, 1);
    }
}
