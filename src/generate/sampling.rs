//! Turning logits into the next token: logit bias, repetition penalty, frequency and presence
//! penalties, temperature, top-k, top-p, min-p, in that order (the order llama.cpp and Hugging
//! Face users know).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::bias::{self, LogitBias};
use super::trace::{Recorder, Stage, Trace};

/// The knobs users turn while the model writes. Off values: temperature 0 = greedy,
/// top_k 0, top_p 1, min_p 0, repeat_penalty 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SamplingParams {
    pub temperature: f32,
    pub top_k: usize,
    pub top_p: f32,
    pub min_p: f32,
    pub repeat_penalty: f32,
    pub repeat_last_n: usize,
    pub max_tokens: usize,
    /// `None` draws a fresh seed for every generation.
    pub seed: Option<u64>,
    /// Added to chosen tokens' logits first in the chain (see [`bias`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub logit_bias: Vec<LogitBias>,
    /// OpenAI's frequency penalty: each generated token's logit is lowered by this much per time
    /// it was generated (0 = off). Applied right after the repetition penalty.
    #[serde(skip_serializing_if = "is_zero")]
    pub frequency_penalty: f32,
    /// OpenAI's presence penalty: lowered once for any token generated at least once (0 = off).
    #[serde(skip_serializing_if = "is_zero")]
    pub presence_penalty: f32,
}

fn is_zero(x: &f32) -> bool {
    *x == 0.0
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.1,
            repeat_last_n: 64,
            max_tokens: 200,
            seed: None,
            logit_bias: Vec::new(),
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
        }
    }
}

impl SamplingParams {
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            ..Self::default()
        }
    }

    /// Checks every value is in range; the message names the setting and the value.
    pub fn validate(&self) -> Result<(), String> {
        let check = |ok: bool, name: &str, value: String, range: &str| {
            if ok {
                Ok(())
            } else {
                Err(format!("{name} {value} is out of range ({range})"))
            }
        };
        let t = self.temperature;
        check(
            t.is_finite() && t >= 0.0,
            "temperature",
            t.to_string(),
            "0 or more; 0 = greedy",
        )?;
        let p = self.top_p;
        check(
            p > 0.0 && p <= 1.0,
            "top-p",
            p.to_string(),
            "above 0, at most 1",
        )?;
        let m = self.min_p;
        check((0.0..=1.0).contains(&m), "min-p", m.to_string(), "0 to 1")?;
        let r = self.repeat_penalty;
        check(
            r.is_finite() && r > 0.0,
            "repeat-penalty",
            r.to_string(),
            "above 0; 1 = off",
        )?;
        for (name, x) in [
            ("frequency-penalty", self.frequency_penalty),
            ("presence-penalty", self.presence_penalty),
        ] {
            check(
                (-2.0..=2.0).contains(&x),
                name,
                x.to_string(),
                "-2 to 2; 0 = off",
            )?;
        }
        Ok(())
    }
}

/// Index and value of the largest logit (the first one on ties, like `argmax`).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in logits.iter().enumerate() {
        if x > logits[best] {
            best = i;
        }
    }
    best as u32
}

pub use crate::kernels::activations::log_sum_exp;

/// The `n` most probable tokens under the raw softmax, most probable first, as (id,
/// probability); `lse` is [`log_sum_exp`] of `logits`, which the caller usually has already.
pub fn top_candidates(logits: &[f32], n: usize, lse: f32) -> Vec<(u32, f32)> {
    top_ids(logits, n)
        .into_iter()
        .map(|id| (id, (logits[id as usize] - lse).exp()))
        .collect()
}

/// The indices of the `n` largest values, largest first (the lower id first on ties).
pub fn top_ids(values: &[f32], n: usize) -> Vec<u32> {
    let mut ids = top_k_indices(values, n);
    ids.sort_by(|&a, &b| {
        values[b as usize]
            .total_cmp(&values[a as usize])
            .then(a.cmp(&b))
    });
    ids
}

/// The indices of the `k` largest values, in no particular order, in O(n).
fn top_k_indices(values: &[f32], k: usize) -> Vec<u32> {
    // Every decode step asks, most often for none (pipe mode shows no alternatives): skip the
    // vocabulary-sized list and its selection then.
    if k == 0 {
        return Vec::new();
    }
    let mut ids: Vec<u32> = (0..values.len() as u32).collect();
    if k < ids.len() {
        ids.select_nth_unstable_by(k, |&a, &b| {
            values[b as usize].total_cmp(&values[a as usize])
        });
        ids.truncate(k);
    }
    ids
}

/// Draws tokens with a seeded generator so that a seed reproduces a run.
#[derive(Debug, Clone)]
pub struct Sampler {
    rng: ChaCha8Rng,
    /// Reused between calls so that sampling allocates nothing per token.
    scratch: Vec<f32>,
}

impl Sampler {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            scratch: Vec::new(),
        }
    }

    /// Picks the next token from raw `logits`; `history` holds the recent tokens, for the
    /// repetition penalty. Nothing was generated yet as far as the frequency and presence
    /// penalties go (see [`Sampler::sample_after`]).
    pub fn sample(&mut self, raw_logits: &[f32], history: &[u32], params: &SamplingParams) -> u32 {
        self.sample_with(raw_logits, history, &[], params, None)
    }

    /// [`Sampler::sample`] when `generated` tokens were already drawn in this reply: the
    /// frequency and presence penalties count them.
    pub fn sample_after(
        &mut self,
        raw_logits: &[f32],
        history: &[u32],
        generated: &[u32],
        params: &SamplingParams,
    ) -> u32 {
        self.sample_with(raw_logits, history, generated, params, None)
    }

    /// Draws as [`Sampler::sample_after`] does (the same token for the same seed) and records
    /// what each stage did, for the `shown` most likely candidates and the drawn token.
    pub fn sample_traced(
        &mut self,
        raw_logits: &[f32],
        history: &[u32],
        generated: &[u32],
        params: &SamplingParams,
        shown: usize,
    ) -> (u32, Trace) {
        let mut recorder = Recorder {
            raw: raw_logits.to_vec(),
            temperature: params.temperature,
            ..Recorder::default()
        };
        let id = self.sample_with(raw_logits, history, generated, params, Some(&mut recorder));
        (id, recorder.finish(id, top_ids(raw_logits, shown)))
    }

    fn sample_with(
        &mut self,
        raw_logits: &[f32],
        history: &[u32],
        generated: &[u32],
        params: &SamplingParams,
        recorder: Option<&mut Recorder>,
    ) -> u32 {
        let mut logits = std::mem::take(&mut self.scratch);
        logits.clear();
        logits.extend_from_slice(raw_logits);
        let id = self.pick(&mut logits, history, generated, params, recorder);
        self.scratch = logits;
        id
    }

    fn pick(
        &mut self,
        logits: &mut [f32],
        history: &[u32],
        generated: &[u32],
        params: &SamplingParams,
        mut recorder: Option<&mut Recorder>,
    ) -> u32 {
        bias::apply(logits, &params.logit_bias);
        apply_repeat_penalty(logits, history, params.repeat_penalty, params.repeat_last_n);
        apply_frequency_presence(
            logits,
            generated,
            params.frequency_penalty,
            params.presence_penalty,
        );
        if let Some(r) = recorder.as_deref_mut() {
            r.adjusted = logits.to_vec();
        }
        if params.temperature <= 0.0 {
            let id = argmax(logits);
            if let Some(r) = recorder {
                r.keep(Stage::Greedy, &[id]);
                r.final_weights = vec![(id, 1.0)];
            }
            return id;
        }
        let mut candidates = match params.top_k {
            0 => (0..logits.len() as u32).collect(),
            k => top_k_indices(logits, k),
        };
        if let Some(r) = recorder.as_deref_mut() {
            if params.top_k > 0 {
                r.keep(Stage::TopK, &candidates);
            }
        }
        // Unnormalised softmax weights at this temperature; only the shape matters from here on.
        let max = candidates
            .iter()
            .map(|&id| logits[id as usize])
            .fold(f32::NEG_INFINITY, f32::max);
        for &id in &candidates {
            let x = logits[id as usize];
            logits[id as usize] = (((x - max) / params.temperature) as f64).exp() as f32;
        }
        let weight = |id: u32| logits[id as usize] as f64;
        if !params.logit_bias.is_empty() {
            // A banned token has weight 0: keep it out of the draw's last-candidate fallback.
            candidates.retain(|&id| weight(id) > 0.0);
            if let Some(r) = recorder.as_deref_mut() {
                r.keep(Stage::Bias, &candidates);
            }
        }
        if params.top_p < 1.0 {
            keep_top_p(&mut candidates, &weight, params.top_p as f64);
            if let Some(r) = recorder.as_deref_mut() {
                r.keep(Stage::TopP, &candidates);
            }
        }
        if params.min_p > 0.0 {
            // The best token has weight 1 (it was the max), so the floor is min_p itself.
            candidates.retain(|&id| weight(id) >= params.min_p as f64);
            if let Some(r) = recorder.as_deref_mut() {
                r.keep(Stage::MinP, &candidates);
            }
        }
        if let Some(r) = recorder {
            r.final_weights = candidates.iter().map(|&id| (id, weight(id))).collect();
        }
        let total: f64 = candidates.iter().map(|&id| weight(id)).sum();
        let mut draw = self.rng.random::<f64>() * total;
        for &id in &candidates {
            if draw < weight(id) {
                return id;
            }
            draw -= weight(id);
        }
        *candidates.last().expect("the best token always survives")
    }
}

/// Keeps the most probable candidates whose mass first reaches `p`. Sorts only as many
/// candidates as needed: usually a few dozen, not the whole vocabulary.
fn keep_top_p(candidates: &mut Vec<u32>, weight: &impl Fn(u32) -> f64, p: f64) {
    let total: f64 = candidates.iter().map(|&id| weight(id)).sum();
    let by_weight = |a: &u32, b: &u32| weight(*b).total_cmp(&weight(*a)).then(a.cmp(b));
    let mut head = 64.min(candidates.len());
    loop {
        if head < candidates.len() {
            candidates.select_nth_unstable_by(head, by_weight);
        }
        candidates[..head].sort_unstable_by(by_weight);
        let mut cumulative = 0.0;
        if let Some(i) = candidates[..head].iter().position(|&id| {
            cumulative += weight(id) / total;
            cumulative >= p
        }) {
            candidates.truncate(i + 1);
            return;
        }
        if head == candidates.len() {
            return;
        }
        head = (head * 8).min(candidates.len());
    }
}

/// CTRL-style penalty over the last `window` tokens: positive logits are divided by `penalty`,
/// negative ones multiplied, once per distinct token.
fn apply_repeat_penalty(logits: &mut [f32], history: &[u32], penalty: f32, window: usize) {
    if penalty == 1.0 || window == 0 {
        return;
    }
    let recent = &history[history.len().saturating_sub(window)..];
    let mut seen = std::collections::HashSet::with_capacity(recent.len());
    for &id in recent {
        if let Some(x) = logits.get_mut(id as usize) {
            if seen.insert(id) {
                *x = if *x > 0.0 { *x / penalty } else { *x * penalty };
            }
        }
    }
}

/// OpenAI's penalties over the tokens generated so far: `logit -= count * frequency +
/// (count > 0) * presence`.
fn apply_frequency_presence(logits: &mut [f32], generated: &[u32], frequency: f32, presence: f32) {
    if (frequency == 0.0 && presence == 0.0) || generated.is_empty() {
        return;
    }
    let mut counts = std::collections::HashMap::<u32, u32>::with_capacity(generated.len());
    for &id in generated {
        *counts.entry(id).or_default() += 1;
    }
    for (id, count) in counts {
        if let Some(x) = logits.get_mut(id as usize) {
            *x -= count as f32 * frequency + presence;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(temperature: f32, top_k: usize, top_p: f32, min_p: f32) -> SamplingParams {
        SamplingParams {
            temperature,
            top_k,
            top_p,
            min_p,
            repeat_penalty: 1.0,
            ..SamplingParams::default()
        }
    }

    #[test]
    fn temperature_zero_is_argmax() {
        let mut s = Sampler::new(1);
        let logits = [0.1, 3.0, 2.9, -1.0];
        assert_eq!(s.sample(&logits, &[], &params(0.0, 0, 1.0, 0.0)), 1);
    }

    #[test]
    fn top_k_one_is_greedy_whatever_the_temperature() {
        let mut s = Sampler::new(7);
        let logits = [0.1, 3.0, 2.9, -1.0];
        for _ in 0..100 {
            assert_eq!(s.sample(&logits, &[], &params(5.0, 1, 1.0, 0.0)), 1);
        }
    }

    #[test]
    fn top_p_keeps_the_smallest_set_reaching_p() {
        // probabilities about 0.64, 0.24, 0.09, 0.03
        let logits = [2.0f32, 1.0, 0.0, -1.0];
        let mut s = Sampler::new(3);
        for _ in 0..200 {
            let id = s.sample(&logits, &[], &params(1.0, 0, 0.8, 0.0));
            assert!(id <= 1, "top-p 0.8 must keep only the two best, got {id}");
        }
    }

    #[test]
    fn min_p_drops_tokens_below_a_fraction_of_the_best() {
        let logits = [2.0f32, 1.0, 0.0, -1.0];
        let mut s = Sampler::new(3);
        for _ in 0..200 {
            // 0.09 / 0.64 < 0.2, so only ids 0 and 1 survive.
            let id = s.sample(&logits, &[], &params(1.0, 0, 1.0, 0.2));
            assert!(id <= 1, "{id}");
        }
    }

    #[test]
    fn repeat_penalty_divides_positive_and_multiplies_negative() {
        let mut logits = [2.0f32, -2.0, 1.0];
        apply_repeat_penalty(&mut logits, &[0, 1, 0], 2.0, 64);
        assert_eq!(logits, [1.0, -4.0, 1.0]);
    }

    #[test]
    fn frequency_and_presence_penalties_follow_openai() {
        let mut logits = [2.0f32, -2.0, 1.0, 0.5];
        // Token 0 generated twice, token 1 once, token 2 never.
        apply_frequency_presence(&mut logits, &[0, 1, 0], 0.5, 0.25);
        assert_eq!(
            logits,
            [2.0 - 2.0 * 0.5 - 0.25, -2.0 - 0.5 - 0.25, 1.0, 0.5]
        );
        let mut off = [1.0f32, 2.0];
        apply_frequency_presence(&mut off, &[0, 1], 0.0, 0.0);
        assert_eq!(off, [1.0, 2.0]);
        // In the chain: a strong frequency penalty moves greedy off a repeated token; the
        // default (0) leaves it, and `sample` alone counts nothing as generated.
        let logits = [3.0f32, 2.5, 0.0];
        let mut s = Sampler::new(1);
        let p = SamplingParams {
            frequency_penalty: 1.0,
            ..params(0.0, 0, 1.0, 0.0)
        };
        assert_eq!(s.sample_after(&logits, &[], &[0], &p), 1);
        assert_eq!(s.sample(&logits, &[], &p), 0);
        assert_eq!(
            s.sample_after(&logits, &[], &[0], &params(0.0, 0, 1.0, 0.0)),
            0
        );
        // Serialized settings are unchanged while the penalties are off.
        let text = toml::to_string(&SamplingParams::default()).unwrap();
        assert!(!text.contains("penalty = 0"), "{text}");
        assert!(!text.contains("frequency"), "{text}");
    }

    #[test]
    fn repeat_penalty_looks_only_at_the_window() {
        let mut logits = [2.0f32, 2.0];
        apply_repeat_penalty(&mut logits, &[0, 1], 2.0, 1);
        assert_eq!(logits, [2.0, 1.0]);
    }

    #[test]
    fn same_seed_same_draws() {
        let logits: Vec<f32> = (0..50).map(|i| (i as f32 * 0.37).sin()).collect();
        let run = |seed| {
            let mut s = Sampler::new(seed);
            (0..20)
                .map(|_| s.sample(&logits, &[], &params(1.0, 0, 1.0, 0.0)))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
    }

    #[test]
    fn top_candidates_are_sorted_probabilities() {
        let top = top_candidates(&[0.0, 2.0, 1.0], 2, log_sum_exp(&[0.0, 2.0, 1.0]));
        assert_eq!(top.iter().map(|c| c.0).collect::<Vec<_>>(), vec![1, 2]);
        let z = 1.0 + 2f32.exp() + 1f32.exp();
        assert!((top[0].1 - 2f32.exp() / z).abs() < 1e-6);
    }

    #[test]
    fn validate_names_the_bad_value() {
        let p = SamplingParams {
            top_p: 1.5,
            ..SamplingParams::default()
        };
        assert!(p.validate().unwrap_err().contains("top-p 1.5"));
        let p = SamplingParams {
            temperature: -1.0,
            ..SamplingParams::default()
        };
        assert!(p.validate().unwrap_err().contains("temperature -1"));
    }

    #[test]
    fn a_banned_token_is_never_drawn_and_a_large_bias_forces_one() {
        // Token 3 is by far the most likely; token 1 the least.
        let logits = [1.0, -2.0, 0.5, 6.0, 0.0];
        let banned = SamplingParams {
            logit_bias: vec!["3=-inf".parse().unwrap()],
            ..params(1.5, 0, 1.0, 0.0)
        };
        let mut sampler = Sampler::new(7);
        let mut drawn = [0usize; 5];
        for _ in 0..1000 {
            drawn[sampler.sample(&logits, &[], &banned) as usize] += 1;
        }
        assert_eq!(drawn[3], 0, "{drawn:?}");
        assert!(drawn.iter().filter(|&&n| n > 0).count() >= 3, "{drawn:?}");
        let greedy_banned = SamplingParams {
            temperature: 0.0,
            ..banned.clone()
        };
        assert_eq!(sampler.sample(&logits, &[], &greedy_banned), 0);
        let forced = SamplingParams {
            logit_bias: vec!["1=100".parse().unwrap()],
            ..params(1.0, 40, 0.95, 0.05)
        };
        for _ in 0..1000 {
            assert_eq!(sampler.sample(&logits, &[], &forced), 1);
        }
    }

    /// Softmax of `logits / t` in f64, for checking the trace by direct computation.
    fn softmax_at(logits: &[f32], t: f64) -> Vec<f64> {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let w: Vec<f64> = logits
            .iter()
            .map(|&x| ((x as f64 - max) / t).exp())
            .collect();
        let total: f64 = w.iter().sum();
        w.iter().map(|x| x / total).collect()
    }

    #[test]
    fn the_trace_records_every_stage_as_a_direct_computation_gives_it() {
        use crate::generate::trace::Stage;
        let raw = [3.0f32, 2.5, 2.0, 1.0, 0.5, 0.0, -1.0, 1.8];
        let params = SamplingParams {
            temperature: 0.5,
            top_k: 6,
            top_p: 0.9,
            min_p: 0.05,
            repeat_penalty: 2.0,
            repeat_last_n: 8,
            logit_bias: vec!["6=1".parse().unwrap(), "7=-inf".parse().unwrap()],
            ..SamplingParams::default()
        };
        // By hand: the bias makes 6 -> 0.0 and bans 7; the penalty halves token 1 (seen) -> 1.25.
        let adjusted = [3.0f32, 1.25, 2.0, 1.0, 0.5, 0.0, 0.0, f32::NEG_INFINITY];
        let tempered = softmax_at(&adjusted, 0.5);
        // top-k 6 by adjusted logit: 0, 2, 1, 3, 4, then 5 and 6 tie at 0.0 (the lower id wins),
        // so 6 and the banned 7 are out. top-p 0.9 over the tempered weights of the six...
        let mut kept: Vec<usize> = vec![0, 2, 1, 3, 4, 5];
        let mass: f64 = kept.iter().map(|&i| tempered[i]).sum();
        let mut cumulative = 0.0;
        let cut = kept
            .iter()
            .position(|&i| {
                cumulative += tempered[i] / mass;
                cumulative >= 0.9
            })
            .unwrap();
        let after_top_p: Vec<usize> = kept[..=cut].to_vec();
        // ... then min-p 0.05 of the best tempered weight.
        let best = tempered[0];
        kept = after_top_p
            .iter()
            .copied()
            .filter(|&i| tempered[i] >= 0.05 * best)
            .collect();
        let kept_mass: f64 = kept.iter().map(|&i| tempered[i]).sum();
        let raw_p = softmax_at(&raw, 1.0);
        let adjusted_p = softmax_at(&adjusted, 1.0);

        let mut plain = Sampler::new(3);
        let mut traced = Sampler::new(3);
        for _ in 0..50 {
            let want = plain.sample(&raw, &[1], &params);
            let (id, trace) = traced.sample_traced(&raw, &[1], &[], &params, 8);
            assert_eq!(id, want, "tracing does not change the draw");
            assert_eq!(trace.drawn, id);
            assert_eq!(trace.survivors, kept.len());
            assert_eq!(trace.rows.len(), 8);
            assert_eq!(trace.rows[0].id, 0, "most likely raw first");
            for row in &trace.rows {
                let i = row.id as usize;
                assert!((row.raw as f64 - raw_p[i]).abs() < 1e-6);
                assert!((row.adjusted as f64 - adjusted_p[i]).abs() < 1e-6);
                assert!((row.tempered as f64 - tempered[i]).abs() < 1e-6);
                let stage = if i == 6 || i == 7 {
                    Some(Stage::TopK)
                } else if !after_top_p.contains(&i) {
                    Some(Stage::TopP)
                } else if !kept.contains(&i) {
                    Some(Stage::MinP)
                } else {
                    None
                };
                assert_eq!(row.removed_by, stage, "token {i}");
                let want_final = if stage.is_none() {
                    tempered[i] / kept_mass
                } else {
                    0.0
                };
                assert!(
                    (row.final_prob as f64 - want_final).abs() < 1e-6,
                    "token {i}"
                );
            }
            assert!(kept.contains(&(id as usize)));
        }
        // Greedy: only the best adjusted token survives.
        let greedy = SamplingParams {
            temperature: 0.0,
            ..params.clone()
        };
        let (id, trace) = traced.sample_traced(&raw, &[1], &[], &greedy, 3);
        assert_eq!(id, 0);
        assert_eq!(trace.rows[0].final_prob, 1.0);
        assert_eq!(trace.rows[1].removed_by, Some(Stage::Greedy));
    }
}
