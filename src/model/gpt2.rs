//! The GPT-2 decoder: token and position embeddings, pre-LayerNorm blocks of causal
//! self-attention and MLP (`layers.rs`), a final LayerNorm and the (usually tied)
//! language-model head; and [`Gpt2::forward`], the one place that picks a backend.
//!
//! Weights keep Hugging Face's "Conv1D" orientation, (in, out), so `y = x @ W + b` and a folder
//! written by the trainer is a valid transformers checkpoint.

use candle_core::quantized::{QMatMul, QTensor};
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::config::Gpt2Config;
use super::cpu::{CpuWeights, HEAD_ROWS};
use super::head::{HeadProduct, LmHead};
use super::init::init;
use super::kv_cache::KvCache;
use super::layers::{Block, LayerNorm, Weight};
use super::q8::{QuantType, QuantizedWeights};

pub use super::layers::Mode;

/// Prompt tokens run through the 8-bit model at a time off the CPU (the CPU backend keeps its
/// activations small at any length).
const QUANTIZED_PREFILL_SLICE: usize = 128;

/// A GPT-2 language model.
#[derive(Debug, Clone)]
pub struct Gpt2 {
    /// The token embeddings (v, e); `None` where the quantized tied head's blocks serve the
    /// lookups (`head.rs`), so no f32 copy of the largest matrix is kept.
    wte: Option<Tensor>,
    wpe: Tensor, // (n_positions, e)
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    head: LmHead,
    config: Gpt2Config,
    /// The same weights as the CPU backend reads them, resolved once: present when they all
    /// sit in host memory in f32 or q8_0 and none is being trained (see `cpu/weights.rs`).
    cpu: Option<CpuWeights>,
}

/// One weight as a model holds it in memory.
#[derive(Clone, Copy)]
pub enum StoredWeight<'a> {
    /// A dense tensor in our layout (matrices (in, out)).
    Dense(&'a Tensor),
    /// GGML blocks, matrices (out, in).
    Quantized(&'a QTensor),
}

impl Gpt2 {
    /// Loads from a VarBuilder whose names have no `transformer.` prefix (`wte.weight`,
    /// `h.0.attn.c_attn.weight`, ...). With a `VarMap`-backed builder this creates fresh,
    /// GPT-2-initialised variables for training.
    pub fn load(vb: VarBuilder, config: &Gpt2Config) -> Result<Self> {
        Self::load_with_quantized(vb, config, QuantizedWeights::new())
    }

    /// A model with fresh GPT-2-initialised weights on the CPU that are not variables (not
    /// being trained), as a checkpoint's would be: for tests and benchmarks.
    pub fn initialised(config: &Gpt2Config) -> Result<Self> {
        let varmap = candle_nn::VarMap::new();
        drop(Self::load(
            VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
            config,
        )?);
        let tensors = varmap
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("the variables' lock is poisoned".into()))?
            .iter()
            .map(|(name, var)| (name.clone(), var.as_tensor().detach()))
            .collect();
        Self::load(
            VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu),
            config,
        )
    }

    /// Like [`Gpt2::load`], with some projections already quantized (q8_0, or any GGML type
    /// from a GGUF file); `vb` need not hold those. A quantized `lm_head.weight` is the output
    /// head's product; with neither `wte.weight` nor `lm_head.weight` in `vb` it is a tied
    /// head, whose blocks also serve the token lookups. Otherwise the dense rows are kept for
    /// the lookups, and let go where the blocks in host memory can serve them.
    pub fn load_with_quantized(
        vb: VarBuilder,
        config: &Gpt2Config,
        mut quantized: QuantizedWeights,
    ) -> Result<Self> {
        let (v, e) = (config.vocab_size, config.n_embd);
        let quantized_head = quantized.remove("lm_head.weight");
        let tied_blocks = quantized_head.is_some()
            && !vb.contains_tensor("wte.weight")
            && !vb.contains_tensor("lm_head.weight");
        let wte = match (tied_blocks, &quantized_head) {
            // Blocks off the host cannot serve lookups row by row: dense rows once.
            (true, Some(QMatMul::QTensor(q))) if !q.device().is_cpu() => {
                Some(q.dequantize(&q.device())?)
            }
            (true, _) => None,
            (false, _) => {
                Some(vb.get_with_hints((v, e), "wte.weight", init("wte.weight", config))?)
            }
        };
        let wpe = vb.get_with_hints(
            (config.n_positions, e),
            "wpe.weight",
            init("wpe.weight", config),
        )?;
        let blocks = (0..config.n_layer)
            .map(|i| Block::load(vb.pp(format!("h.{i}")), config, &mut quantized))
            .collect::<Result<Vec<_>>>()?;
        if let Some(name) = quantized.keys().next() {
            candle_core::bail!("quantized weight `{name}` is not a projection of this model");
        }
        let ln_f = LayerNorm::load(vb.pp("ln_f"), e, config)?;
        let stored_head = match vb.contains_tensor("lm_head.weight") {
            true => Some(vb.get((v, e), "lm_head.weight")?),
            false => wte.clone(),
        };
        let head = match (quantized_head, stored_head) {
            (Some(q), stored) => LmHead::quantized(stored, q),
            (None, Some(stored)) => LmHead::new(stored)?,
            (None, None) => unreachable!("rows are only left out beside a quantized head"),
        };
        let mut model = Self {
            wte,
            wpe,
            blocks,
            ln_f,
            head,
            config: config.clone(),
            cpu: None,
        };
        model.share_head_blocks_for_lookups();
        model.lay_out_for_cpu();
        Ok(model)
    }

    /// Lets the dense token embeddings go where a quantized tied head's blocks, in host memory
    /// and not being trained, can serve the lookups instead.
    fn share_head_blocks_for_lookups(&mut self) {
        let tied = self.has_tied_head();
        let trained = self.wte.as_ref().is_some_and(|w| w.is_variable());
        if tied && !trained && self.head.drop_dense_rows() {
            self.wte = None;
        }
    }

    /// (Re)builds the CPU backend's view of the weights after they changed.
    fn lay_out_for_cpu(&mut self) {
        self.cpu = CpuWeights::new(
            self.wte.as_ref(),
            &self.wpe,
            &self.blocks,
            &self.ln_f,
            &self.head,
        );
    }

    pub fn config(&self) -> &Gpt2Config {
        &self.config
    }

    /// Stores the projections and the output head as 8-bit blocks (GGML q8_0): a quarter of the
    /// memory traffic of f32 per decoded token. Embeddings, biases and layer norms stay as they
    /// are. Returns how many matrices could not be quantized (input width not a multiple of 32).
    pub fn quantize_q8_0(&mut self) -> Result<usize> {
        self.quantize(QuantType::Q8_0)
    }

    /// [`Gpt2::quantize_q8_0`] in any of the block formats `--dtype` offers. Types other than
    /// q8_0 run on candle's quantized kernels (prompts through the tensor path).
    pub fn quantize(&mut self, kind: QuantType) -> Result<usize> {
        // The CPU view holds the dense weights too: let each go as its layer is quantized.
        self.cpu = None;
        let mut skipped = 0;
        for block in &mut self.blocks {
            skipped += block.quantize(kind)?;
        }
        if !self.head.quantize(kind)? {
            skipped += 1;
        }
        self.share_head_blocks_for_lookups();
        self.lay_out_for_cpu();
        Ok(skipped)
    }

    /// Every weight the model holds, by our names (`wte.weight`, `h.0.attn.c_attn.weight`,
    /// ...), as it sits in memory: what a file must keep for [`Gpt2::load_with_quantized`] to
    /// build this very model again. `lm_head.weight` is a head of its own (dense or blocks),
    /// absent for a tied head; a quantized tied head's blocks are `wte.weight`, as llama.cpp
    /// stores them (they serve the lookups too).
    pub fn stored_weights(&self) -> Result<Vec<(String, StoredWeight<'_>)>> {
        fn matrix(name: String, weight: &Weight) -> Result<(String, StoredWeight<'_>)> {
            match weight {
                Weight::Dense(w) => Ok((name, StoredWeight::Dense(w))),
                Weight::Quantized(q) => Ok((name, blocks(q, "projection")?)),
            }
        }
        fn blocks<'a>(q: &'a QMatMul, what: &str) -> Result<StoredWeight<'a>> {
            match q {
                QMatMul::QTensor(q) => Ok(StoredWeight::Quantized(q)),
                _ => candle_core::bail!("a quantized {what} is held dequantized, not in blocks"),
            }
        }
        fn norm<'a>(out: &mut Vec<(String, StoredWeight<'a>)>, name: &str, norm: &'a LayerNorm) {
            let (weight, bias, _) = norm.parts();
            out.push((format!("{name}.weight"), StoredWeight::Dense(weight)));
            out.push((format!("{name}.bias"), StoredWeight::Dense(bias)));
        }
        let tied = self.has_tied_head();
        let wte = match (&self.wte, self.head.parts()) {
            (_, (_, HeadProduct::Q8(q))) if tied => blocks(q, "head")?,
            (Some(wte), _) => StoredWeight::Dense(wte),
            (None, _) => candle_core::bail!("token embeddings without rows or blocks"),
        };
        let mut out = vec![
            ("wte.weight".to_string(), wte),
            ("wpe.weight".to_string(), StoredWeight::Dense(&self.wpe)),
        ];
        for (i, block) in self.blocks.iter().enumerate() {
            let (ln_1, attn, ln_2, mlp) = block.parts();
            let (c_attn, attn_proj) = attn.projections();
            let (c_fc, mlp_proj, _) = mlp.parts();
            norm(&mut out, &format!("h.{i}.ln_1"), ln_1);
            for (part, linear) in [("attn.c_attn", c_attn), ("attn.c_proj", attn_proj)] {
                out.push(matrix(format!("h.{i}.{part}.weight"), linear.weight())?);
                out.push((
                    format!("h.{i}.{part}.bias"),
                    StoredWeight::Dense(linear.bias()),
                ));
            }
            norm(&mut out, &format!("h.{i}.ln_2"), ln_2);
            for (part, linear) in [("mlp.c_fc", c_fc), ("mlp.c_proj", mlp_proj)] {
                out.push(matrix(format!("h.{i}.{part}.weight"), linear.weight())?);
                out.push((
                    format!("h.{i}.{part}.bias"),
                    StoredWeight::Dense(linear.bias()),
                ));
            }
        }
        norm(&mut out, "ln_f", &self.ln_f);
        let head = "lm_head.weight".to_string();
        match self.head.parts() {
            _ if tied => {}
            (_, HeadProduct::Q8(q)) => out.push((head, blocks(q, "head")?)),
            (Some(stored), _) => out.push((head, StoredWeight::Dense(stored))),
            (None, _) => candle_core::bail!("a head of its own without rows or blocks"),
        }
        Ok(out)
    }

    pub fn is_quantized(&self) -> bool {
        self.head.is_quantized()
    }

    /// The formats the weight matrices are stored in, the one holding most parameters first:
    /// `f32`, `q8_0`, `q6_k+q4_k` for llama.cpp's Q4_K_M mix of a small model, `q4_k+f32` where a type's block
    /// does not divide some widths. Embeddings and norms, always dense, are not counted.
    pub fn weight_format(&self) -> String {
        let Ok(weights) = self.stored_weights() else {
            return self.dtype().as_str().to_string();
        };
        let mut formats: Vec<(&'static str, usize)> = Vec::new();
        for (name, weight) in &weights {
            let (format, count) = match weight {
                StoredWeight::Dense(w) if w.rank() == 2 && !name.starts_with("w") => {
                    (w.dtype().as_str(), w.elem_count())
                }
                StoredWeight::Quantized(q) => (ggml_name(q.dtype()), q.shape().elem_count()),
                StoredWeight::Dense(_) => continue,
            };
            match formats.iter_mut().find(|(f, _)| *f == format) {
                Some((_, n)) => *n += count,
                None => formats.push((format, count)),
            }
        }
        formats.sort_by_key(|&(_, count)| std::cmp::Reverse(count));
        match formats.is_empty() {
            true => self.dtype().as_str().to_string(),
            false => formats
                .iter()
                .map(|(f, _)| *f)
                .collect::<Vec<_>>()
                .join("+"),
        }
    }

    /// Bytes the weights take as stored: matrices in their blocks or dense, embeddings, norms
    /// and biases; 0 where they cannot be listed.
    pub fn weight_bytes(&self) -> u64 {
        let Ok(weights) = self.stored_weights() else {
            return 0;
        };
        let bytes = |weight: &StoredWeight| match weight {
            StoredWeight::Dense(w) => w.elem_count() * w.dtype().size_in_bytes(),
            StoredWeight::Quantized(q) => q.storage_size_in_bytes(),
        };
        weights.iter().map(|(_, w)| bytes(w) as u64).sum()
    }

    /// The dtype of the KV cache: f16 beside 8- and 4-bit weights on the CPU, the compute
    /// dtype otherwise.
    pub fn kv_dtype(&self) -> DType {
        self.cpu
            .as_ref()
            .map_or(self.dtype(), CpuWeights::cached_dtype)
    }

    /// Whether the output head is the token embedding matrix (no `lm_head.weight` of its own).
    pub fn has_tied_head(&self) -> bool {
        match (&self.wte, self.head.parts().0) {
            (None, _) => true,
            (Some(wte), Some(head)) => head.id() == wte.id(),
            (Some(_), None) => false,
        }
    }

    pub fn device(&self) -> &Device {
        self.wpe.device()
    }

    pub fn dtype(&self) -> DType {
        self.wpe.dtype()
    }

    /// ids (b, t) placed from `start` -> token plus position embeddings (b, t, e).
    fn embed(&self, ids: &Tensor, start: usize) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let ids = ids.flatten_all()?;
        let tokens = match &self.wte {
            Some(wte) => wte.embedding(&ids)?,
            None => self.head.lookup(&ids)?,
        }; // (b t, e)
        let tokens = tokens.reshape((b, t, self.config.n_embd))?; // (b, t, e)
        let positions = self.wpe.narrow(0, start, t)?; // (t, e)
        tokens.broadcast_add(&positions)
    }

    /// Runs `ids` through the model after the tokens already in `cache`, appends them to the
    /// cache, and returns the f32 logits of the last position only, shape (vocab,).
    ///
    /// The backend, first match wins:
    /// 1. **CPU decode step** (`cpu::decode_step`): one token, and the weights are laid out for
    ///    the CPU backend (host memory, f32 or GGML blocks, no trained variables).
    /// 2. **CPU prompt pass** (`cpu::prefill`): any number of tokens, with that layout (so
    ///    prompts and decoding share one kind of cache). f32 and q8_0 products are our own
    ///    kernels; other block formats (4-, 5-, 6-bit) are the library's product.
    /// 3. **Tensor path, in slices** (the layers' `forward`, one slice after another): an 8-bit
    ///    model off the CPU with more than `QUANTIZED_PREFILL_SLICE` (128) tokens, so the
    ///    attention scores (which grow with the square of the slice) stay small next to the
    ///    weights.
    /// 4. **Tensor path** (the layers' `forward` on the whole input): everything else (GPUs,
    ///    f16/bf16 weights, dense models off the CPU, which are faster on the whole prompt).
    pub fn forward(&self, ids: &[u32], cache: &mut KvCache) -> Result<Tensor> {
        let start = cache.len();
        self.check_input(ids, start)?;
        match &self.cpu {
            Some(cpu) if ids.len() == 1 => return cpu.decode_step(ids[0], cache),
            Some(cpu) => return cpu.prefill(ids, cache),
            None => {}
        }
        let slice = match self.is_quantized() {
            true => QUANTIZED_PREFILL_SLICE,
            false => usize::MAX,
        };
        if ids.len() > slice {
            let (head, tail) = ids.split_at(ids.len() - (ids.len() - 1) % slice - 1);
            for part in head.chunks(slice) {
                self.forward(part, cache)?;
            }
            return self.forward(tail, cache);
        }
        let x = self.blocks_forward(ids, cache)?; // (1, t, e)
        let last = x.narrow(1, ids.len() - 1, 1)?; // (1, 1, e)
        let last = self.ln_f.forward(&last, Mode::Inference)?;
        self.head.forward(&last)?.flatten_all() // (v,)
    }

    /// [`Gpt2::forward`] with the output head on every row in `rows`: runs `ids` after the
    /// cached tokens, appends them to the cache, and returns `per_row(r, logits)` for each
    /// row `r` in `rows` (a range within `0..ids.len()`), where row r's f32 logits (vocab,) predict the token after
    /// `ids[r]`. The logits are never all held at once: each row is reduced by `per_row` as soon
    /// as it is computed, a few rows at a time.
    ///
    /// The backend, first match wins (the order of `forward`, less the decode step, which is
    /// the prompt pass of one token here):
    /// 1. **CPU prompt pass** (`cpu::prefill_every_row`), when `forward` would use it.
    /// 2. **Tensor path** (the layers' `forward` on the whole input, the head on
    ///    `cpu::HEAD_ROWS` rows at a time): everything else.
    pub fn forward_rows<T: Send>(
        &self,
        ids: &[u32],
        cache: &mut KvCache,
        rows: std::ops::Range<usize>,
        per_row: impl Fn(usize, &[f32]) -> T + Sync,
    ) -> Result<Vec<T>> {
        let start = cache.len();
        self.check_input(ids, start)?;
        if rows.start > rows.end || rows.end > ids.len() {
            candle_core::bail!("rows {rows:?} of a {}-token input", ids.len());
        }
        if let Some(cpu) = &self.cpu {
            return cpu.prefill_every_row(ids, cache, rows, &per_row);
        }
        let x = self.blocks_forward(ids, cache)?; // (1, t, e)
        let mut out = Vec::with_capacity(rows.len());
        for first in rows.clone().step_by(HEAD_ROWS) {
            let n = HEAD_ROWS.min(rows.end - first);
            let part = self
                .ln_f
                .forward(&x.narrow(1, first, n)?, Mode::Inference)?;
            let logits = self.head.forward(&part)?.squeeze(0)?; // (n, v)
            for r in 0..n {
                out.push(per_row(first + r, &logits.get(r)?.to_vec1::<f32>()?));
            }
        }
        Ok(out)
    }

    /// The tensor path up to the final layer norm: `ids` after the cached tokens through
    /// every block, appended to the cache; the hidden states (1, t, e).
    fn blocks_forward(&self, ids: &[u32], cache: &mut KvCache) -> Result<Tensor> {
        let start = cache.len();
        let input = Tensor::new(ids, self.device())?.unsqueeze(0)?; // (1, t)
        let mut x = self.embed(&input, start)?; // (1, t, e)
        for (layer, block) in self.blocks.iter().enumerate() {
            x = block
                .forward(&x, Some((&mut *cache, layer)), start, Mode::Inference)?
                .0;
        }
        cache.record(ids);
        Ok(x)
    }

    /// `forward`'s checks: tokens to run, room in the window, ids in the vocabulary.
    fn check_input(&self, ids: &[u32], start: usize) -> Result<()> {
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
        Ok(())
    }

    /// Full-sequence forward with differentiable kernels and no cache: ids (b, t) to logits
    /// (b, t, vocab). Used by the trainer and by scoring.
    pub fn forward_all(&self, ids: &Tensor, mode: Mode) -> Result<Tensor> {
        let mut x = self.embed(ids, 0)?; // (b, t, e)
        for block in &self.blocks {
            x = block.forward(&x, None, 0, mode)?.0;
        }
        let x = self.ln_f.forward(&x, mode)?;
        self.head.forward(&x) // (b, t, v)
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

/// Tests of the CPU backend against the tensor path.
#[cfg(test)]
impl Gpt2 {
    /// Whether a prompt goes through the CPU prompt pass.
    pub(crate) fn prefills_on_cpu(&self) -> bool {
        self.cpu.is_some()
    }

    /// The output head back to its stored dense weights.
    pub(crate) fn with_dense_head(mut self) -> Self {
        let rows = self.head.dense_rows().unwrap();
        if self.wte.is_none() {
            self.wte = Some(rows.clone());
        }
        self.head = LmHead::new(rows).unwrap();
        self.lay_out_for_cpu();
        self
    }

    /// The token lookups back on dense f32 rows (the head's blocks dequantized), the head's
    /// product unchanged.
    pub(crate) fn with_dense_lookups(mut self) -> Self {
        let rows = self.head.dense_rows().unwrap();
        let HeadProduct::Q8(q) = self.head.parts().1.clone() else {
            panic!("a quantized head");
        };
        self.wte = Some(rows.clone());
        self.head = LmHead::quantized(Some(rows), q);
        self.lay_out_for_cpu();
        self
    }

    /// Every q8_0 projection turned back into dense f32 weights.
    pub(crate) fn with_dequantized_projections(mut self) -> Self {
        self.cpu = None;
        self.blocks.iter_mut().for_each(Block::dequantize);
        self.lay_out_for_cpu();
        self
    }
}

impl Module for Gpt2 {
    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        self.forward_all(ids, Mode::Inference)
    }
}

/// llama.cpp's lowercase name of a GGML type (`Q4K` is `q4_k`).
fn ggml_name(dtype: candle_core::quantized::GgmlDType) -> &'static str {
    use candle_core::quantized::GgmlDType as T;
    match dtype {
        T::F32 => "f32",
        T::F16 => "f16",
        T::BF16 => "bf16",
        T::Q4_0 => "q4_0",
        T::Q4_1 => "q4_1",
        T::Q5_0 => "q5_0",
        T::Q5_1 => "q5_1",
        T::Q8_0 => "q8_0",
        T::Q8_1 => "q8_1",
        T::Q2K => "q2_k",
        T::Q3K => "q3_k",
        T::Q4K => "q4_k",
        T::Q5K => "q5_k",
        T::Q6K => "q6_k",
        T::Q8K => "q8_k",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Token rows read from the quantized tied head's blocks (the CPU backend and the tensor
    /// path) equal dense rows holding those blocks' values: the same logits, prompt and
    /// decode step, in every block format the lookups read.
    #[test]
    fn lookups_from_the_head_blocks_equal_dense_rows() {
        let config = Gpt2Config {
            vocab_size: 300,
            n_positions: 32,
            n_embd: 256,
            n_layer: 1,
            n_head: 4,
            ..Gpt2Config::gpt2_small()
        };
        let dense = Gpt2::initialised(&config).unwrap();
        for kind in [QuantType::Q8_0, QuantType::Q4_0, QuantType::Q4K] {
            let mut blocks = dense.clone();
            blocks.quantize(kind).unwrap();
            assert!(
                blocks.wte.is_none(),
                "{kind:?}: the head's blocks serve the lookups"
            );
            let rows = blocks.clone().with_dense_lookups();
            let ids = [5u32, 17, 299, 0, 42];
            let run = |model: &Gpt2| {
                let mut cache = KvCache::new(config.n_layer, config.n_positions);
                let prompt = model
                    .forward(&ids, &mut cache)
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap();
                let step = model
                    .forward(&[7], &mut cache)
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap();
                let embedded = model
                    .embed(&Tensor::new(&[ids], &Device::Cpu).unwrap(), 0)
                    .unwrap();
                (
                    prompt,
                    step,
                    embedded.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                )
            };
            assert_eq!(run(&blocks), run(&rows), "{kind:?}");
        }
    }
}
