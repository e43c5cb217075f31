//! The GPT-2 decoder: token and position embeddings, pre-LayerNorm blocks of causal
//! self-attention and MLP, a final LayerNorm and the (usually tied) language-model head.
//!
//! Weights keep Hugging Face's "Conv1D" orientation, (in, out), so `y = x @ W + b` and a folder
//! written by the trainer is a valid transformers checkpoint.

use candle_core::quantized::{GgmlDType, QMatMul, QStorage, QTensor};
use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::{Init, VarBuilder};

use super::config::{Activation, Gpt2Config};
use super::kv_cache::KvCache;
use crate::kernels;
use crate::kernels::activations;

/// GPT-2's initialisation for fresh weights.
const INIT: Init = Init::Randn {
    mean: 0.0,
    stdev: 0.02,
};

/// GPT-2 scales the residual projections by 1/sqrt(2 * n_layer) at init.
fn residual_init(cfg: &Gpt2Config) -> Init {
    Init::Randn {
        mean: 0.0,
        stdev: 0.02 / (2.0 * cfg.n_layer as f64).sqrt(),
    }
}

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

/// Quantized kernels work on blocks of 32 along the input dimension.
pub const Q8_BLOCK: usize = 32;

/// Projection weights already in q8_0, by full name (`h.0.attn.c_attn.weight`): the loader
/// quantizes each as it is read, so the f32 copies never all sit in memory at once.
pub type QuantizedWeights = std::collections::HashMap<String, QMatMul>;

/// The q8_0 form of a dense (in, out) weight, stored (out, in) as the quantized kernels want.
pub fn quantize_q8_0_weight(w: &Tensor) -> Result<QMatMul> {
    QMatMul::from_qtensor(QTensor::quantize(&w.t()?.contiguous()?, GgmlDType::Q8_0)?)
}

/// q8_0 blocks of a row-major (rows, width) matrix, quantized a slice of rows at a time: the
/// quantizer copies its input to f32 first, which for the whole head would add a third of
/// GPT-2 small's f32 size to the peak memory.
fn quantize_rows_q8_0(w: &Tensor) -> Result<QTensor> {
    const ROWS_PER_SLICE: usize = 2048;
    let (rows, width) = w.dims2()?;
    if !w.device().is_cpu() {
        return QTensor::quantize(&w.to_dtype(DType::F32)?, GgmlDType::Q8_0);
    }
    let mut bytes = Vec::with_capacity(rows * width / Q8_BLOCK * GgmlDType::Q8_0.type_size());
    for start in (0..rows).step_by(ROWS_PER_SLICE) {
        let slice = w.narrow(0, start, ROWS_PER_SLICE.min(rows - start))?;
        // The quantizer reads the storage from its start, ignoring a view's offset: hand it a
        // tensor of its own.
        let slice = Tensor::from_vec(
            slice
                .flatten_all()?
                .to_dtype(DType::F32)?
                .to_vec1::<f32>()?,
            slice.shape(),
            slice.device(),
        )?;
        bytes.extend_from_slice(&QTensor::quantize(&slice, GgmlDType::Q8_0)?.data()?);
    }
    let storage = QStorage::from_data(std::borrow::Cow::Owned(bytes), w.device(), GgmlDType::Q8_0)?;
    QTensor::new(storage, (rows, width))
}

/// `x @ W^T` for f32 rows `x` (m, k) and 8-bit `W` (n, k): the compact-weight kernels on the
/// CPU, the library's elsewhere.
pub(super) fn quantized_matmul(q: &QMatMul, x: &Tensor) -> Result<Tensor> {
    if let QMatMul::QTensor(w) = q {
        if let Some(y) = crate::kernels::q8::matmul_t(x, w)? {
            return Ok(y);
        }
    }
    q.forward(x)
}

/// [`quantized_matmul`] for one row given as a slice, without tensors on the CPU path.
pub(super) fn quantized_matvec(q: &QMatMul, x: &[f32]) -> Result<Vec<f32>> {
    if let QMatMul::QTensor(w) = q {
        if let Some(y) = crate::kernels::q8::rows_times_t(x, w)? {
            return Ok(y);
        }
    }
    let x = Tensor::from_slice(x, (1, x.len()), &Device::Cpu)?;
    q.forward(&x)?.flatten_all()?.to_vec1()
}

/// A projection `y = x @ W + b`.
#[derive(Debug, Clone)]
pub(super) struct Linear {
    pub(super) weight: Weight,
    pub(super) bias: Tensor,
    pub(super) out_dim: usize,
}

impl Linear {
    fn load(
        vb: &VarBuilder,
        name: &str,
        shape: (usize, usize),
        init: Init,
        quantized: &mut QuantizedWeights,
    ) -> Result<Self> {
        let key = format!("{name}.weight");
        let full_name = match vb.prefix() {
            prefix if prefix.is_empty() => key.clone(),
            prefix => format!("{prefix}.{key}"),
        };
        let weight = match quantized.remove(&full_name) {
            Some(q) => Weight::Quantized(q),
            None => Weight::Dense(vb.get_with_hints(shape, &key, init)?),
        };
        Ok(Self {
            weight,
            bias: vb.get_with_hints(shape.1, &format!("{name}.bias"), Init::Const(0.0))?,
            out_dim: shape.1,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut dims = x.dims().to_vec();
        let in_dim = dims.pop().expect("at least one dim");
        let rows: usize = dims.iter().product();
        let x = x.reshape((rows, in_dim))?;
        let y = match &self.weight {
            Weight::Dense(w) => {
                let fast = if rows == 1 {
                    kernels::single_row_matmul(&x, w)?
                } else {
                    None
                };
                match fast {
                    Some(y) => y,
                    None => x.matmul(w)?,
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

    /// Replaces a dense weight by its q8_0 form when its input width allows it.
    fn quantize(&mut self) -> Result<bool> {
        let Weight::Dense(w) = &self.weight else {
            return Ok(true);
        };
        if w.dim(0)? % Q8_BLOCK != 0 {
            return Ok(false);
        }
        self.weight = Weight::Quantized(quantize_q8_0_weight(w)?);
        Ok(true)
    }
}

#[derive(Debug, Clone)]
pub(super) struct LayerNorm {
    pub(super) weight: Tensor,
    pub(super) bias: Tensor,
    pub(super) eps: f64,
}

impl LayerNorm {
    fn load(vb: VarBuilder, width: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(width, "weight", Init::Const(1.0))?,
            bias: vb.get_with_hints(width, "bias", Init::Const(0.0))?,
            eps,
        })
    }

    /// Normalises in f32 whatever the storage dtype: the statistics are the sensitive part.
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
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
}

#[derive(Debug, Clone)]
pub(super) struct Attention {
    pub(super) c_attn: Linear,
    pub(super) c_proj: Linear,
    pub(super) n_head: usize,
    pub(super) head_dim: usize,
}

impl Attention {
    fn load(vb: VarBuilder, cfg: &Gpt2Config, q: &mut QuantizedWeights) -> Result<Self> {
        let e = cfg.n_embd;
        Ok(Self {
            c_attn: Linear::load(&vb, "c_attn", (e, 3 * e), INIT, q)?,
            c_proj: Linear::load(&vb, "c_proj", (e, e), residual_init(cfg), q)?,
            n_head: cfg.n_head,
            head_dim: cfg.head_dim(),
        })
    }

    /// Query, key and value projections split into heads: each (b, heads, t, head_dim).
    fn qkv(&self, x: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, t, e) = x.dims3()?;
        let qkv = self.c_attn.forward(x)?;
        let split = |i: usize| -> Result<Tensor> {
            qkv.narrow(D::Minus1, i * e, e)?
                .reshape((b, t, self.n_head, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        Ok((split(0)?, split(1)?, split(2)?))
    }

    /// Attention probabilities of the new queries over all cached keys, (b, heads, t, start + t).
    fn probabilities(&self, q: &Tensor, k: &Tensor, start: usize, mode: Mode) -> Result<Tensor> {
        let t = q.dim(2)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let scores = (q.matmul(&k.t()?)? * scale)?.to_dtype(DType::F32)?;
        let scores = if t > 1 {
            let total = start + t;
            let mask = causal_mask(t, start, q.device())?;
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

    /// The attention output, and the attention probabilities (b, heads, t, start + t).
    fn forward(
        &self,
        x: &Tensor,
        cache: Option<(&mut KvCache, usize)>,
        start: usize,
        mode: Mode,
    ) -> Result<(Tensor, Tensor)> {
        let (b, t, e) = x.dims3()?;
        let (q, k, v) = self.qkv(x)?;
        let (k, v) = match cache {
            Some((cache, layer)) => cache.append(layer, start, &k, &v)?,
            None => (k, v),
        };
        let probs = self.probabilities(&q, &k, start, mode)?;
        let y = probs.to_dtype(v.dtype())?.matmul(&v)?;
        let y = y.transpose(1, 2)?.reshape((b, t, e))?;
        Ok((self.c_proj.forward(&y)?, probs))
    }
}

/// Additive mask for `t` new queries at positions `start..start + t`: -inf above the diagonal.
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
    pub(super) c_fc: Linear,
    pub(super) c_proj: Linear,
    pub(super) activation: Activation,
}

impl Mlp {
    fn load(vb: VarBuilder, cfg: &Gpt2Config, q: &mut QuantizedWeights) -> Result<Self> {
        let (e, inner) = (cfg.n_embd, cfg.mlp_width());
        Ok(Self {
            c_fc: Linear::load(&vb, "c_fc", (e, inner), INIT, q)?,
            c_proj: Linear::load(&vb, "c_proj", (inner, e), residual_init(cfg), q)?,
            activation: cfg.activation().map_err(candle_core::Error::wrap)?,
        })
    }

    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let h = self.c_fc.forward(x)?;
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
        self.c_proj.forward(&h)
    }
}

#[derive(Debug, Clone)]
pub(super) struct Block {
    pub(super) ln_1: LayerNorm,
    pub(super) attn: Attention,
    pub(super) ln_2: LayerNorm,
    pub(super) mlp: Mlp,
}

impl Block {
    fn load(vb: VarBuilder, cfg: &Gpt2Config, q: &mut QuantizedWeights) -> Result<Self> {
        let eps = cfg.layer_norm_epsilon;
        Ok(Self {
            ln_1: LayerNorm::load(vb.pp("ln_1"), cfg.n_embd, eps)?,
            attn: Attention::load(vb.pp("attn"), cfg, q)?,
            ln_2: LayerNorm::load(vb.pp("ln_2"), cfg.n_embd, eps)?,
            mlp: Mlp::load(vb.pp("mlp"), cfg, q)?,
        })
    }

    /// The four weight matrices with their biases.
    pub(super) fn projections(&self) -> [&Linear; 4] {
        [
            &self.attn.c_attn,
            &self.attn.c_proj,
            &self.mlp.c_fc,
            &self.mlp.c_proj,
        ]
    }

    pub(super) fn projections_mut(&mut self) -> [&mut Linear; 4] {
        [
            &mut self.attn.c_attn,
            &mut self.attn.c_proj,
            &mut self.mlp.c_fc,
            &mut self.mlp.c_proj,
        ]
    }

    /// The block's output and its attention probabilities.
    fn forward(
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
}

/// Prompt tokens run through the 8-bit model at a time off the CPU (`prefill_cpu.rs` keeps
/// its activations small at any length).
const QUANTIZED_PREFILL_SLICE: usize = 128;

/// A GPT-2 language model.
#[derive(Debug, Clone)]
pub struct Gpt2 {
    pub(super) wte: Tensor,
    pub(super) wpe: Tensor,
    pub(super) blocks: Vec<Block>,
    pub(super) ln_f: LayerNorm,
    /// (vocab, n_embd); the same tensor as `wte` unless the checkpoint has `lm_head.weight`.
    lm_head: Tensor,
    /// The head in q8_0, when the model was quantized (`lm_head` then only serves lookups).
    pub(super) lm_head_q8: Option<QMatMul>,
    /// An f32 copy of the head when the weights are stored in f16 or bf16.
    lm_head_f32: Option<Tensor>,
    pub(super) config: Gpt2Config,
}

impl Gpt2 {
    /// Loads from a VarBuilder whose names have no `transformer.` prefix (`wte.weight`,
    /// `h.0.attn.c_attn.weight`, ...). With a `VarMap`-backed builder this creates fresh,
    /// GPT-2-initialised variables for training.
    pub fn load(vb: VarBuilder, config: &Gpt2Config) -> Result<Self> {
        Self::load_with_quantized(vb, config, QuantizedWeights::new())
    }

    /// Like [`Gpt2::load`], with some projections already in q8_0; `vb` need not hold those.
    pub fn load_with_quantized(
        vb: VarBuilder,
        config: &Gpt2Config,
        mut quantized: QuantizedWeights,
    ) -> Result<Self> {
        let wte = vb.get_with_hints(
            (config.vocab_size, config.n_embd),
            "wte.weight",
            Init::Randn {
                mean: 0.0,
                stdev: 0.02,
            },
        )?;
        let wpe = vb.get_with_hints(
            (config.n_positions, config.n_embd),
            "wpe.weight",
            Init::Randn {
                mean: 0.0,
                stdev: 0.01,
            },
        )?;
        let blocks = (0..config.n_layer)
            .map(|i| Block::load(vb.pp(format!("h.{i}")), config, &mut quantized))
            .collect::<Result<Vec<_>>>()?;
        if let Some(name) = quantized.keys().next() {
            candle_core::bail!("quantized weight `{name}` is not a projection of this model");
        }
        let ln_f = LayerNorm::load(vb.pp("ln_f"), config.n_embd, config.layer_norm_epsilon)?;
        let lm_head = if vb.contains_tensor("lm_head.weight") {
            vb.get((config.vocab_size, config.n_embd), "lm_head.weight")?
        } else {
            wte.clone()
        };
        Ok(Self {
            wte,
            wpe,
            blocks,
            ln_f,
            lm_head_f32: match lm_head.dtype() {
                DType::F16 | DType::BF16 => Some(lm_head.to_dtype(DType::F32)?),
                _ => None,
            },
            lm_head,
            lm_head_q8: None,
            config: config.clone(),
        })
    }

    pub fn config(&self) -> &Gpt2Config {
        &self.config
    }

    /// Stores the projections and the output head as 8-bit blocks (GGML q8_0): a quarter of the
    /// memory traffic of f32 per decoded token. Embeddings, biases and layer norms stay as they
    /// are. Returns how many matrices could not be quantized (input width not a multiple of 32).
    pub fn quantize_q8_0(&mut self) -> Result<usize> {
        let mut skipped = 0;
        for block in &mut self.blocks {
            for linear in block.projections_mut() {
                if !linear.quantize()? {
                    skipped += 1;
                }
            }
        }
        if self.config.n_embd % Q8_BLOCK == 0 {
            self.lm_head_q8 = Some(QMatMul::from_qtensor(quantize_rows_q8_0(&self.lm_head)?)?);
        } else {
            skipped += 1;
        }
        Ok(skipped)
    }

    pub fn is_quantized(&self) -> bool {
        self.lm_head_q8.is_some()
    }

    /// Whether the output head is the token embedding matrix (no `lm_head.weight` of its own).
    pub fn has_tied_head(&self) -> bool {
        self.lm_head.id() == self.wte.id()
    }

    pub fn device(&self) -> &Device {
        self.wte.device()
    }

    pub fn dtype(&self) -> DType {
        self.wte.dtype()
    }

    fn embed(&self, ids: &Tensor, start: usize) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let tokens =
            self.wte
                .embedding(&ids.flatten_all()?)?
                .reshape((b, t, self.config.n_embd))?;
        let positions = self.wpe.narrow(0, start, t)?;
        tokens.broadcast_add(&positions)
    }

    pub(super) fn head(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, e) = x.dims3()?;
        let x = x.reshape((b * t, e))?;
        if let Some(q) = &self.lm_head_q8 {
            return quantized_matmul(q, &x.to_dtype(DType::F32)?)?.reshape((
                b,
                t,
                self.config.vocab_size,
            ));
        }
        // Half-precision storage would round the logits (to 1/16 at |x| near 10 in bf16): the
        // head runs in f32 from its own f32 copy.
        let (x, head) = match &self.lm_head_f32 {
            Some(head) => (x.to_dtype(DType::F32)?, head),
            None => (x, &self.lm_head),
        };
        let fast = if b * t == 1 {
            kernels::single_row_matmul_t(&x, head)?
        } else {
            None
        };
        let logits = match fast {
            Some(logits) => logits,
            None => x.matmul(&head.t()?)?,
        };
        logits
            .reshape((b, t, self.config.vocab_size))?
            .to_dtype(DType::F32)
    }

    /// Runs `ids` through the model after the tokens already in `cache`, appends them to the
    /// cache, and returns the f32 logits of the last position only, shape (vocab,).
    pub fn forward(&self, ids: &[u32], cache: &mut KvCache) -> Result<Tensor> {
        let start = cache.len();
        if ids.is_empty() {
            candle_core::bail!("forward needs at least one token");
        }
        if start + ids.len() > self.config.n_positions {
            candle_core::bail!(
                "{} tokens exceed the context window of {}",
                start + ids.len(),
                self.config.n_positions
            );
        }
        if let Some(&bad) = ids
            .iter()
            .find(|&&id| id as usize >= self.config.vocab_size)
        {
            candle_core::bail!(
                "token id {bad} is outside the vocabulary of {}",
                self.config.vocab_size
            );
        }
        if ids.len() == 1 && self.can_decode_on_cpu() {
            return self.decode_step(ids[0], cache);
        }
        if self.can_prefill_on_cpu() {
            return self.prefill(ids, cache);
        }
        // Off the CPU, the 8-bit model is chosen to save memory: long prompts go through it in
        // slices, so the activations (attention scores grow with the square of the slice) stay
        // small next to the weights. Dense matmuls are faster on the whole prompt at once.
        let chunk = if self.is_quantized() {
            QUANTIZED_PREFILL_SLICE
        } else {
            usize::MAX
        };
        if ids.len() > chunk {
            let (head, tail) = ids.split_at(ids.len() - (ids.len() - 1) % chunk - 1);
            for slice in head.chunks(chunk) {
                self.forward(slice, cache)?;
            }
            return self.forward(tail, cache);
        }
        let input = Tensor::new(ids, self.device())?.unsqueeze(0)?;
        let mut x = self.embed(&input, start)?;
        for (layer, block) in self.blocks.iter().enumerate() {
            x = block
                .forward(&x, Some((&mut *cache, layer)), start, Mode::Inference)?
                .0;
        }
        cache.record(ids);
        let last = x.narrow(1, ids.len() - 1, 1)?;
        let last = self.ln_f.forward(&last, Mode::Inference)?;
        self.head(&last)?.flatten_all()
    }

    /// Full-sequence forward with differentiable kernels and no cache: ids (b, t) to logits
    /// (b, t, vocab). Used by the trainer and by scoring.
    pub fn forward_all(&self, ids: &Tensor, mode: Mode) -> Result<Tensor> {
        let mut x = self.embed(ids, 0)?;
        for block in &self.blocks {
            x = block.forward(&x, None, 0, mode)?.0;
        }
        let x = self.ln_f.forward(&x, mode)?;
        self.head(&x)
    }

    /// Attention probabilities of every layer for `ids` run as one sequence: one (heads, t, t)
    /// f32 tensor per layer, zero above the diagonal (the masked future). Computed on demand,
    /// apart from decoding, which never keeps them.
    pub fn attention_maps(&self, ids: &[u32]) -> Result<Vec<Tensor>> {
        let input = Tensor::new(ids, self.device())?.unsqueeze(0)?;
        let mut x = self.embed(&input, 0)?;
        let mut maps = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            let (next, probs) = block.forward(&x, None, 0, Mode::Inference)?;
            maps.push(probs.squeeze(0)?);
            x = next;
        }
        Ok(maps)
    }
}

impl Module for Gpt2 {
    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        self.forward_all(ids, Mode::Inference)
    }
}
