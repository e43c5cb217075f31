//! The sampler trace: what each stage of the chain did to the candidates at one step, recorded
//! by the sampler itself while it draws (never recomputed later), and only when asked for, so
//! decoding without a view pays nothing.

use std::collections::HashSet;

/// The stage that took a candidate out of the draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Its logit bias made it impossible (`-inf`).
    Bias,
    /// Temperature 0: only the most likely token is drawn.
    Greedy,
    TopK,
    TopP,
    MinP,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Bias => "bias",
            Stage::Greedy => "greedy",
            Stage::TopK => "top-k",
            Stage::TopP => "top-p",
            Stage::MinP => "min-p",
        }
    }
}

/// One candidate through the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceRow {
    pub id: u32,
    /// Raw softmax.
    pub raw: f32,
    /// Softmax after the logit bias and the repetition penalty.
    pub adjusted: f32,
    /// Softmax of the adjusted logits at the temperature (the same as `adjusted` when greedy).
    pub tempered: f32,
    /// The stage that removed it, if one did.
    pub removed_by: Option<Stage>,
    /// The probability it was drawn with: its share of what survived every stage (0 if removed).
    pub final_prob: f32,
}

/// The candidates of one step, most likely (raw) first, and the token drawn.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Trace {
    pub rows: Vec<TraceRow>,
    pub drawn: u32,
    /// How many tokens survived every stage.
    pub survivors: usize,
}

/// What the sampler hands over while it draws; turned into a [`Trace`] at the end.
#[derive(Debug, Default)]
pub(super) struct Recorder {
    pub raw: Vec<f32>,
    pub adjusted: Vec<f32>,
    pub temperature: f32,
    /// Survivors after each stage that ran, in order.
    pub after: Vec<(Stage, Vec<u32>)>,
    /// The draw's weights, by id, for the final survivors.
    pub final_weights: Vec<(u32, f64)>,
}

impl Recorder {
    pub fn keep(&mut self, stage: Stage, survivors: &[u32]) {
        self.after.push((stage, survivors.to_vec()));
    }

    /// The trace of the candidates `ids` (the most likely raw ones, most likely first), plus
    /// the drawn token if it is not among them.
    pub fn finish(self, drawn: u32, mut ids: Vec<u32>) -> Trace {
        let raw = softmax(&self.raw, 1.0);
        let adjusted = softmax(&self.adjusted, 1.0);
        let tempered = if self.temperature > 0.0 {
            softmax(&self.adjusted, self.temperature)
        } else {
            adjusted.clone()
        };
        if !ids.contains(&drawn) {
            ids.push(drawn);
        }
        let stages: Vec<(Stage, HashSet<u32>)> = self
            .after
            .into_iter()
            .map(|(stage, kept)| (stage, kept.into_iter().collect()))
            .collect();
        let total: f64 = self.final_weights.iter().map(|&(_, w)| w).sum();
        let survivors = self.final_weights.len();
        let final_weights: std::collections::HashMap<u32, f64> =
            self.final_weights.into_iter().collect();
        let rows = ids
            .into_iter()
            .map(|id| {
                let i = id as usize;
                let removed_by = stages
                    .iter()
                    .find(|(_, kept)| !kept.contains(&id))
                    .map(|(stage, _)| *stage);
                let final_prob = match (removed_by, final_weights.get(&id)) {
                    (None, Some(&w)) if total > 0.0 => (w / total) as f32,
                    _ => 0.0,
                };
                TraceRow {
                    id,
                    raw: raw[i],
                    adjusted: adjusted[i],
                    tempered: tempered[i],
                    removed_by,
                    final_prob,
                }
            })
            .collect();
        Trace {
            rows,
            drawn,
            survivors,
        }
    }
}

/// Softmax of `logits / temperature`, in f64 for the sums.
fn softmax(logits: &[f32], temperature: f32) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let weights: Vec<f64> = logits
        .iter()
        .map(|&x| (((x - max) / temperature) as f64).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    weights.iter().map(|w| (w / total) as f32).collect()
}
