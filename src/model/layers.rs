//! The layers of GPT-2, bottom-up as in nanoGPT's `model.py`: `Linear`, `LayerNorm`,
//! `Attention`, `Mlp` and `Block` (the output head is `head.rs`), each with `load` (names and shapes of a
//! Hugging Face checkpoint, fresh weights from [`super::init`]) and the tensor `forward` that
//! every device runs and the CPU backend is tested against.
//!
//! Shapes: b batch, t new tokens, s = start + t cached positions, e = n_embd, h heads,
//! d = head_dim, i = MLP width, v = vocabulary. Weights keep Hugging Face's "Conv1D"
//! orientation, (in, out), so `y = x @ W + b`.
//!
//! The CPU backend reads these weights once, at load, through the accessors at the end of each
//! layer (`cpu::CpuWeights`); nothing reads a layer's tensors per call from outside.

use candle_core::quantized::QMatMul;
use candle_core::{DType, Device, Result, Tensor, D};
use candle_nn::VarBuilder;

use super::config::{Activation, Gpt2Config};
use super::init::init;
use super::kv_cache::KvCache;
use super::q8::{quantize_weight, quantized_matmul};
use super::q8::{QuantType, QuantizedWeights};
use crate::kernels;
use crate::kernels::activations;

/// Which kernels to use: the fused inference ones, or differentiable ones for training.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Inference,
    Training,
}

/// A weight matrix as the forward pass uses it.
#[derive(Debug, Clone)]
pub(super) enum Weight {
    /// Dense, in Hugging Face's "Conv1D" layout (in, out).
    Dense(Tensor),
    /// 8-bit blocks (GGML q8_0), stored (out, in) as the quantized kernels want.
    Quantized(QMatMul),
}

/// `vb`'s full name for `key` (`h.0.attn.c_attn.weight`).
fn full_name(vb: &VarBuilder, key: &str) -> String {
    match vb.prefix() {
        prefix if prefix.is_empty() => key.to_string(),
        prefix => format!("{prefix}.{key}"),
    }
}

/// A projection `y = x @ W + b`.
#[derive(Debug, Clone)]
pub(super) struct Linear {
    weight: Weight, // (in, out) dense, or (out, in) in q8_0
    bias: Tensor,   // (out,)
    out_dim: usize,
}

impl Linear {
    fn load(
        vb: &VarBuilder,
        name: &str,
        shape: (usize, usize),
        cfg: &Gpt2Config,
        quantized: &mut QuantizedWeights,
    ) -> Result<Self> {
        let (key, bias) = (format!("{name}.weight"), format!("{name}.bias"));
        let weight = match quantized.remove(&full_name(vb, &key)) {
            Some(q) => Weight::Quantized(q),
            None => {
                Weight::Dense(vb.get_with_hints(shape, &key, init(&full_name(vb, &key), cfg))?)
            }
        };
        Ok(Self {
            weight,
            bias: vb.get_with_hints(shape.1, &bias, init(&full_name(vb, &bias), cfg))?,
            out_dim: shape.1,
        })
    }

    /// (..., in) -> (..., out)
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut dims = x.dims().to_vec();
        let in_dim = dims.pop().expect("at least one dim");
        let rows: usize = dims.iter().product();
        let x = x.reshape((rows, in_dim))?; // (rows, in)
        let y = match &self.weight {
            Weight::Dense(w) => {
                let fast = if rows == 1 {
                    kernels::single_row_matmul(&x, w)?
                } else {
                    None
                };
                match fast {
                    Some(y) => y,
                    None => x.matmul(w)?, // (rows, out)
                }
            }
            Weight::Quantized(q) => {
                quantized_matmul(q, &x.to_dtype(DType::F32)?)?.to_dtype(x.dtype())?
            }
        };
        dims.push(self.out_dim);
        // `y` is fresh; unless gradients will flow through it, add the bias in place.
        let trained = matches!(&self.weight, Weight::Dense(w) if w.is_variable());
        if !trained && activations::add_bias_in_place(&y, &self.bias)? {
            return y.reshape(dims);
        }
        y.broadcast_add(&self.bias)?.reshape(dims)
    }

    /// Replaces a dense weight by its `kind` form when its input width allows it.
    fn quantize(&mut self, kind: QuantType) -> Result<bool> {
        let Weight::Dense(w) = &self.weight else {
            return Ok(true);
        };
        if w.dim(0)? % kind.block() != 0 {
            return Ok(false);
        }
        self.weight = Weight::Quantized(quantize_weight(w, kind)?);
        Ok(true)
    }

    /// Tests only: a quantized weight turned back into its dense f32 values.
    #[cfg(test)]
    fn dequantize(&mut self) {
        let Weight::Quantized(QMatMul::QTensor(q)) = &self.weight else {
            panic!("expected a q8_0 projection");
        };
        let dense = q.dequantize(&Device::Cpu).unwrap().t().unwrap();
        self.weight = Weight::Dense(dense.contiguous().unwrap());
    }

    pub(super) fn weight(&self) -> &Weight {
        &self.weight
    }

    pub(super) fn bias(&self) -> &Tensor {
        &self.bias
    }
}

#[derive(Debug, Clone)]
pub(super) struct LayerNorm {
    weight: Tensor, // (e,)
    bias: Tensor,   // (e,)
    eps: f64,
}

impl LayerNorm {
    pub(super) fn load(vb: VarBuilder, width: usize, cfg: &Gpt2Config) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(width, "weight", init(&full_name(&vb, "weight"), cfg))?,
            bias: vb.get_with_hints(width, "bias", init(&full_name(&vb, "bias"), cfg))?,
            eps: cfg.layer_norm_epsilon,
        })
    }

    /// (..., e) -> (..., e). Normalises in f32 whatever the storage dtype: the statistics are
    /// the sensitive part.
    pub(super) fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let dtype = x.dtype();
        let x32 = x.to_dtype(DType::F32)?;
        let w = self.weight.to_dtype(DType::F32)?;
        let b = self.bias.to_dtype(DType::F32)?;
        let y = match mode {
            Mode::Inference => {
                candle_nn::ops::layer_norm(&x32.contiguous()?, &w, &b, self.eps as f32)?
            }
            Mode::Training => candle_nn::ops::layer_norm_slow(&x32, &w, &b, self.eps as f32)?,
        };
        y.to_dtype(dtype)
    }

    /// The gain, the bias and epsilon.
    pub(super) fn parts(&self) -> (&Tensor, &Tensor, f64) {
        (&self.weight, &self.bias, self.eps)
    }
}

/// Causal self-attention.
#[derive(Debug, Clone)]
pub(super) struct Attention {
    c_attn: Linear, // e -> 3e: queries, keys and values side by side
    c_proj: Linear, // e -> e
    n_head: usize,
    head_dim: usize,
}

impl Attention {
    fn load(vb: VarBuilder, cfg: &Gpt2Config, q: &mut QuantizedWeights) -> Result<Self> {
        let e = cfg.n_embd;
        Ok(Self {
            c_attn: Linear::load(&vb, "c_attn", (e, 3 * e), cfg, q)?,
            c_proj: Linear::load(&vb, "c_proj", (e, e), cfg, q)?,
            n_head: cfg.n_head,
            head_dim: cfg.head_dim(),
        })
    }

    /// Query, key and value projections split into heads: each (b, h, t, d).
    fn qkv(&self, x: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, t, e) = x.dims3()?;
        let qkv = self.c_attn.forward(x)?; // (b, t, 3e)
        let split = |i: usize| -> Result<Tensor> {
            qkv.narrow(D::Minus1, i * e, e)? // (b, t, e)
                .reshape((b, t, self.n_head, self.head_dim))? // (b, t, h, d)
                .transpose(1, 2)? // (b, h, t, d)
                .contiguous()
        };
        Ok((split(0)?, split(1)?, split(2)?))
    }

    /// Attention probabilities of the new queries over all cached keys, (b, h, t, s).
    fn probabilities(&self, q: &Tensor, k: &Tensor, start: usize, mode: Mode) -> Result<Tensor> {
        let t = q.dim(2)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let scores = (q.matmul(&k.t()?)? * scale)?.to_dtype(DType::F32)?; // (b, h, t, s)
        let scores = if t > 1 {
            let total = start + t;
            let mask = causal_mask(t, start, q.device())?; // (t, s)
            scores.broadcast_add(&mask.reshape((1, 1, t, total))?)?
        } else {
            scores
        };
        match mode {
            // `scores` is this function's own fresh tensor, so it may become the probabilities.
            Mode::Inference => match activations::softmax_last_dim_in_place(&scores)? {
                true => Ok(scores),
                false => candle_nn::ops::softmax_last_dim(&scores),
            },
            Mode::Training => candle_nn::ops::softmax(&scores, D::Minus1),
        }
    }

    /// (b, t, e) -> the attention output (b, t, e) and the probabilities (b, h, t, s).
    fn forward(
        &self,
        x: &Tensor,
        cache: Option<(&mut KvCache, usize)>,
        start: usize,
        mode: Mode,
    ) -> Result<(Tensor, Tensor)> {
        let (b, t, e) = x.dims3()?;
        let (q, k, v) = self.qkv(x)?; // (b, h, t, d) each
        let (k, v) = match cache {
            Some((cache, layer)) => cache.append(layer, start, &k, &v)?, // (b, h, s, d)
            None => (k, v),
        };
        let probs = self.probabilities(&q, &k, start, mode)?; // (b, h, t, s)
        let y = probs.to_dtype(v.dtype())?.matmul(&v)?; // (b, h, t, d)
        let y = y.transpose(1, 2)?.reshape((b, t, e))?; // (b, t, e)
        Ok((self.c_proj.forward(&y)?, probs))
    }

    /// The two projections: `c_attn` (e -> 3e) and `c_proj` (e -> e).
    pub(super) fn projections(&self) -> (&Linear, &Linear) {
        (&self.c_attn, &self.c_proj)
    }

    /// Heads and their width.
    pub(super) fn heads(&self) -> (usize, usize) {
        (self.n_head, self.head_dim)
    }
}

/// Additive mask for `t` new queries at positions `start..start + t`: -inf above the diagonal,
/// (t, start + t).
fn causal_mask(t: usize, start: usize, device: &Device) -> Result<Tensor> {
    let total = start + t;
    let mask: Vec<f32> = (0..t)
        .flat_map(|i| {
            (0..total).map(move |j| {
                if j > start + i {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
        })
        .collect();
    Tensor::from_vec(mask, (t, total), device)
}

#[derive(Debug, Clone)]
pub(super) struct Mlp {
    c_fc: Linear,   // e -> i
    c_proj: Linear, // i -> e
    activation: Activation,
}

impl Mlp {
    fn load(vb: VarBuilder, cfg: &Gpt2Config, q: &mut QuantizedWeights) -> Result<Self> {
        let (e, inner) = (cfg.n_embd, cfg.mlp_width());
        Ok(Self {
            c_fc: Linear::load(&vb, "c_fc", (e, inner), cfg, q)?,
            c_proj: Linear::load(&vb, "c_proj", (inner, e), cfg, q)?,
            activation: cfg.activation().map_err(candle_core::Error::wrap)?,
        })
    }

    /// (b, t, e) -> (b, t, e)
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let h = self.c_fc.forward(x)?; // (b, t, i)
                                       // `h` is this function's own fresh tensor, so it may be changed in place.
        let done = match (self.activation, mode) {
            (Activation::GeluTanh, Mode::Inference) => activations::gelu_tanh_tensor_in_place(&h)?,
            _ => false,
        };
        let h = match (done, self.activation) {
            (true, _) => h,
            (false, Activation::GeluTanh) => h.gelu()?,
            (false, Activation::GeluErf) => h.gelu_erf()?,
            (false, Activation::Relu) => h.relu()?,
        };
        self.c_proj.forward(&h) // (b, t, e)
    }

    /// The two projections, `c_fc` (e -> i) and `c_proj` (i -> e), and the activation between.
    pub(super) fn parts(&self) -> (&Linear, &Linear, Activation) {
        (&self.c_fc, &self.c_proj, self.activation)
    }
}

/// One transformer block: `x + attn(ln_1(x))`, then `x + mlp(ln_2(x))`.
#[derive(Debug, Clone)]
pub(super) struct Block {
    ln_1: LayerNorm,
    attn: Attention,
    ln_2: LayerNorm,
    mlp: Mlp,
}

impl Block {
    pub(super) fn load(vb: VarBuilder, cfg: &Gpt2Config, q: &mut QuantizedWeights) -> Result<Self> {
        Ok(Self {
            ln_1: LayerNorm::load(vb.pp("ln_1"), cfg.n_embd, cfg)?,
            attn: Attention::load(vb.pp("attn"), cfg, q)?,
            ln_2: LayerNorm::load(vb.pp("ln_2"), cfg.n_embd, cfg)?,
            mlp: Mlp::load(vb.pp("mlp"), cfg, q)?,
        })
    }

    /// (b, t, e) -> the block's output (b, t, e) and its attention probabilities (b, h, t, s).
    pub(super) fn forward(
        &self,
        x: &Tensor,
        cache: Option<(&mut KvCache, usize)>,
        start: usize,
        mode: Mode,
    ) -> Result<(Tensor, Tensor)> {
        let normed = self.ln_1.forward(x, mode)?;
        let (attn, probs) = self.attn.forward(&normed, cache, start, mode)?;
        let x = (x + attn)?;
        let out = (&x + self.mlp.forward(&self.ln_2.forward(&x, mode)?, mode)?)?;
        Ok((out, probs))
    }

    /// Stores the four projections in `kind` where their input width allows it; returns how
    /// many could not be.
    pub(super) fn quantize(&mut self, kind: QuantType) -> Result<usize> {
        let mut skipped = 0;
        for linear in [
            &mut self.attn.c_attn,
            &mut self.attn.c_proj,
            &mut self.mlp.c_fc,
            &mut self.mlp.c_proj,
        ] {
            if !linear.quantize(kind)? {
                skipped += 1;
            }
        }
        Ok(skipped)
    }

    /// Tests only: every q8_0 projection turned back into dense f32 weights.
    #[cfg(test)]
    pub(super) fn dequantize(&mut self) {
        self.attn.c_attn.dequantize();
        self.attn.c_proj.dequantize();
        self.mlp.c_fc.dequantize();
        self.mlp.c_proj.dequantize();
    }

    /// `ln_1`, `attn`, `ln_2`, `mlp`, in the order the block applies them.
    pub(super) fn parts(&self) -> (&LayerNorm, &Attention, &LayerNorm, &Mlp) {
        (&self.ln_1, &self.attn, &self.ln_2, &self.mlp)
    }
}
