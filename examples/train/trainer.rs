//! The optimisation itself: a GPT-2 built by the library on a `VarMap`, seeded initialisation,
//! AdamW with warm-up and cosine decay, global-norm gradient clipping.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use gpt2_tui::model::{init, Gpt2, Gpt2Config, Mode};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Optimiser settings.
#[derive(Debug, Clone)]
pub struct Hyper {
    pub lr: f64,
    /// The learning rate at the end of the cosine, as a fraction of `lr`.
    pub min_lr_frac: f64,
    pub warmup: usize,
    pub steps: usize,
    pub weight_decay: f64,
    pub clip: f64,
    pub beta2: f64,
}

impl Hyper {
    /// Linear warm-up to `lr`, then cosine decay to `lr * min_lr_frac` at the last step.
    pub fn lr_at(&self, step: usize) -> f64 {
        let span = (self.steps.saturating_sub(self.warmup)).max(1) as f64;
        let progress = (step.saturating_sub(self.warmup) as f64 / span).min(1.0);
        self.lr_at_progress(step, progress)
    }

    /// The same schedule with the decay driven by `progress` (0 to 1) instead of the step,
    /// for runs limited by time rather than steps.
    pub fn lr_at_progress(&self, step: usize, progress: f64) -> f64 {
        if step < self.warmup {
            return self.lr * (step + 1) as f64 / self.warmup as f64;
        }
        let progress = progress.clamp(0.0, 1.0);
        let min = self.lr * self.min_lr_frac;
        min + 0.5 * (self.lr - min) * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

pub struct Trainer {
    pub model: Gpt2,
    varmap: VarMap,
    /// Matrices (embeddings included) get weight decay; gains and biases do not.
    decayed: AdamW,
    plain: AdamW,
    pub hyper: Hyper,
    device: Device,
}

/// Result of one optimiser step.
#[derive(Debug, Clone, Copy)]
pub struct StepStats {
    pub loss: f32,
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
    pub lr: f64,
}

/// Standard normal numbers from a seeded generator (Box-Muller), so that initialisation does
/// not depend on candle's unseedable CPU generator.
fn normals(rng: &mut ChaCha8Rng, n: usize, std: f64) -> Vec<f32> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u1: f64 = 1.0 - rng.random::<f64>();
        let u2: f64 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = 2.0 * std::f64::consts::PI * u2;
        out.push((r * theta.cos() * std) as f32);
        out.push((r * theta.sin() * std) as f32);
    }
    out.truncate(n);
    out
}

impl Trainer {
    pub fn new(config: Gpt2Config, hyper: Hyper, seed: u64) -> anyhow::Result<Self> {
        let device = Device::Cpu;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
        let model = Gpt2::load(vb, &config)?;
        // Redraw every matrix from the seeded generator, in name order, with the model's table.
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for (name, var) in sorted_vars(&varmap) {
            if var.rank() == 2 {
                let values = normals(&mut rng, var.elem_count(), init::matrix_std(&name, &config));
                var.set(&Tensor::from_vec(values, var.shape(), &device)?)?;
            }
        }
        let (mut matrices, mut vectors) = (Vec::new(), Vec::new());
        for (_, var) in sorted_vars(&varmap) {
            if var.rank() >= 2 {
                matrices.push(var);
            } else {
                vectors.push(var);
            }
        }
        let params = |weight_decay| ParamsAdamW {
            lr: hyper.lr,
            beta1: 0.9,
            beta2: hyper.beta2,
            eps: 1e-8,
            weight_decay,
        };
        Ok(Self {
            decayed: AdamW::new(matrices, params(hyper.weight_decay))?,
            plain: AdamW::new(vectors, params(0.0))?,
            model,
            varmap,
            hyper,
            device,
        })
    }

    /// Trainable parameters (the tied head counted once).
    pub fn parameter_count(&self) -> usize {
        self.varmap.all_vars().iter().map(|v| v.elem_count()).sum()
    }

    /// The current weights by name, for saving.
    pub fn tensors(&self) -> BTreeMap<String, Tensor> {
        sorted_vars(&self.varmap)
            .into_iter()
            .map(|(name, var)| (name, var.as_tensor().detach()))
            .collect()
    }

    /// (inputs, targets) of shape (batch, len) from windows of len + 1 tokens.
    pub fn batch(&self, windows: &[&[u32]]) -> anyhow::Result<(Tensor, Tensor)> {
        let len = windows[0].len() - 1;
        let mut inputs = Vec::with_capacity(windows.len() * len);
        let mut targets = Vec::with_capacity(windows.len() * len);
        for w in windows {
            inputs.extend_from_slice(&w[..len]);
            targets.extend_from_slice(&w[1..]);
        }
        let shape = (windows.len(), len);
        Ok((
            Tensor::from_vec(inputs, shape, &self.device)?,
            Tensor::from_vec(targets, shape, &self.device)?,
        ))
    }

    /// Mean cross-entropy (nats per token) of a batch.
    fn loss(&self, inputs: &Tensor, targets: &Tensor, mode: Mode) -> anyhow::Result<Tensor> {
        let logits = self.model.forward_all(inputs, mode)?;
        let (b, t, v) = logits.dims3()?;
        Ok(candle_nn::loss::cross_entropy(
            &logits.reshape((b * t, v))?,
            &targets.reshape(b * t)?,
        )?)
    }

    /// One optimiser step on one batch at learning rate `lr`.
    pub fn step(
        &mut self,
        lr: f64,
        inputs: &Tensor,
        targets: &Tensor,
    ) -> anyhow::Result<StepStats> {
        let loss = self.loss(inputs, targets, Mode::Training)?;
        let mut grads = loss.backward()?;
        let vars = self.varmap.all_vars();
        let mut sum_sq = 0f64;
        for var in &vars {
            if let Some(g) = grads.get(var) {
                sum_sq += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
            }
        }
        let grad_norm = sum_sq.sqrt();
        if grad_norm.is_finite() && grad_norm > self.hyper.clip {
            let scale = self.hyper.clip / grad_norm;
            for var in &vars {
                if let Some(g) = grads.remove(var) {
                    grads.insert(var, (g * scale)?);
                }
            }
        }
        self.decayed.set_learning_rate(lr);
        self.plain.set_learning_rate(lr);
        self.decayed.step(&grads)?;
        self.plain.step(&grads)?;
        Ok(StepStats {
            loss: loss.to_scalar::<f32>()?,
            grad_norm: grad_norm as f32,
            lr,
        })
    }

    /// Mean loss over consecutive, non-overlapping windows (no gradients).
    pub fn eval(&self, windows: &[&[u32]], batch: usize) -> anyhow::Result<f64> {
        let mut total = 0f64;
        let mut count = 0usize;
        for chunk in windows.chunks(batch) {
            let (inputs, targets) = self.batch(chunk)?;
            let loss = self.loss(&inputs, &targets, Mode::Inference)?;
            let n = chunk.len() * (chunk[0].len() - 1);
            total += loss.to_scalar::<f32>()? as f64 * n as f64;
            count += n;
        }
        Ok(total / count as f64)
    }
}

fn sorted_vars(varmap: &VarMap) -> Vec<(String, Var)> {
    let data = varmap.data().lock().expect("varmap lock");
    let mut vars: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// Consecutive windows of `len + 1` tokens (overlapping by one) covering `tokens`: the fixed
/// validation set.
pub fn eval_windows(tokens: &[u32], len: usize) -> Vec<&[u32]> {
    let mut out = Vec::new();
    let mut start = 0;
    while start + len < tokens.len() {
        out.push(&tokens[start..start + len + 1]);
        start += len;
    }
    out
}
