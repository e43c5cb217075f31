//! The weights as the CPU backend reads them: plain slices of host memory (f32, or q8_0 blocks),
//! resolved once when the model is loaded or quantized, per layer.
//!
//! **Memory.** Nothing is copied. Each [`HostF32`] / [`HostQ8`] keeps a handle on the tensor
//! the layers own (a reference count, not the data) and the address and length of that
//! tensor's host buffer, read once. A candle CPU tensor's data is a `Vec` inside its storage;
//! the handle keeps that storage alive for as long as the view exists, and candle never moves
//! or resizes a storage's buffer (its in-place operations, `slice_set`, `Var::set` and the
//! like, write into the existing buffer). The weights are never written while a model exists:
//! variables (training) are not laid out here at all, and the model's own in-place kernels
//! only write fresh activations. So the slices stay valid and the weights sit in memory once,
//! whichever path reads them. When [`super::super::Gpt2::quantize_q8_0`] replaces dense
//! weights, it drops this view first so each dense matrix is freed as its layer is quantized,
//! as before.

use candle_core::quantized::{GgmlDType, QMatMul};
use candle_core::{DType, Tensor};

use crate::kernels::q8::Q8Matrix;
use crate::kernels::with_f32_slice;
use crate::model::config::Activation;
use crate::model::head::{HeadProduct, LmHead};
use crate::model::layers::{Block, LayerNorm, Linear, Weight};

/// The f32 data of a contiguous CPU tensor, resolved once.
#[derive(Clone)]
pub(super) struct HostF32 {
    /// Keeps the storage `ptr` points into alive.
    _tensor: Tensor,
    ptr: *const f32,
    len: usize,
}

// SAFETY: the data is only read, and `Tensor` itself is `Send + Sync`.
unsafe impl Send for HostF32 {}
unsafe impl Sync for HostF32 {}

impl HostF32 {
    /// `None` for a tensor that is not contiguous f32 in host memory, or that is a variable.
    fn new(tensor: &Tensor) -> Option<Self> {
        if tensor.is_variable() {
            return None;
        }
        let (ptr, len) = with_f32_slice(tensor, |data| (data.as_ptr(), data.len()))?;
        Some(Self {
            _tensor: tensor.clone(),
            ptr,
            len,
        })
    }

    pub(super) fn get(&self) -> &[f32] {
        // SAFETY: see the module doc: `_tensor` keeps the buffer alive and unmoved, and
        // nothing writes it.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// The token embeddings as the backend reads them.
#[derive(Clone)]
pub(super) enum TokenRows {
    /// f32 rows (v, e).
    Dense(HostF32),
    /// The quantized tied head's blocks, of any GGML type: a row is dequantized per lookup.
    Blocks(HostBlocks),
}

/// The blocks of a matrix in any GGML type in host memory, resolved once.
#[derive(Clone)]
pub(super) struct HostBlocks {
    /// Keeps the blocks `ptr` points into alive; a `QTensor` is never changed.
    _weights: QMatMul,
    ptr: *const u8,
    len: usize,
    pub(super) dtype: GgmlDType,
}

// SAFETY: as for `HostF32`.
unsafe impl Send for HostBlocks {}
unsafe impl Sync for HostBlocks {}

impl HostBlocks {
    /// `None` unless `q` holds its blocks in host memory.
    fn new(q: &QMatMul) -> Option<Self> {
        let QMatMul::QTensor(w) = q else {
            return None;
        };
        match w.data().ok()? {
            std::borrow::Cow::Borrowed(blocks) => Some(Self {
                _weights: q.clone(),
                ptr: blocks.as_ptr(),
                len: blocks.len(),
                dtype: w.dtype(),
            }),
            std::borrow::Cow::Owned(_) => None,
        }
    }

    pub(super) fn get(&self) -> &[u8] {
        // SAFETY: as for `HostF32::get`: `_weights` keeps the blocks alive and unchanged.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// The blocks of a q8_0 matrix (n, k) in host memory, resolved once.
#[derive(Clone)]
pub(super) struct HostQ8 {
    /// Keeps the blocks `ptr` points into alive; a `QTensor` is never changed.
    _weights: QMatMul,
    ptr: *const u8,
    len: usize,
    n: usize,
    k: usize,
}

// SAFETY: as for `HostF32`.
unsafe impl Send for HostQ8 {}
unsafe impl Sync for HostQ8 {}

impl HostQ8 {
    /// `None` unless `q` holds q8_0 blocks in host memory whose rows are whole blocks.
    fn new(q: &QMatMul) -> candle_core::Result<Option<Self>> {
        let QMatMul::QTensor(w) = q else {
            return Ok(None);
        };
        Ok(Q8Matrix::of(w)?.map(|m| Self {
            _weights: q.clone(),
            ptr: m.blocks.as_ptr(),
            len: m.blocks.len(),
            n: m.n,
            k: m.k,
        }))
    }

    pub(super) fn get(&self) -> Q8Matrix<'_> {
        Q8Matrix {
            // SAFETY: as for `HostF32::get`.
            blocks: unsafe { std::slice::from_raw_parts(self.ptr, self.len) },
            n: self.n,
            k: self.k,
        }
    }
}

/// A projection's weight matrix.
#[derive(Clone)]
pub(super) enum Matrix {
    /// f32 (k, n) = (in, out), row-major: `y = x @ W`.
    Dense { w: HostF32, k: usize, n: usize },
    /// q8_0 (out, in): `y = x @ W^T`.
    Q8(HostQ8),
    /// Another quantized form (4-, 5- or 6-bit blocks, or one candle dequantized on request):
    /// the library's product.
    Other(QMatMul),
}

impl Matrix {
    fn new(weight: &Weight) -> Option<Self> {
        match weight {
            Weight::Dense(w) => {
                let (k, n) = w.dims2().ok()?;
                Some(Self::Dense {
                    w: HostF32::new(w)?,
                    k,
                    n,
                })
            }
            Weight::Quantized(q) => Some(match HostQ8::new(q).ok()? {
                Some(q8) => Self::Q8(q8),
                None => Self::Other(q.clone()),
            }),
        }
    }
}

/// `y = x @ W + b`.
#[derive(Clone)]
pub(super) struct CpuLinear {
    pub(super) weight: Matrix,
    pub(super) bias: HostF32, // (out,)
    pub(super) out_dim: usize,
}

impl CpuLinear {
    fn new(linear: &Linear) -> Option<Self> {
        let bias = HostF32::new(linear.bias())?;
        Some(Self {
            weight: Matrix::new(linear.weight())?,
            out_dim: bias.len,
            bias,
        })
    }
}

#[derive(Clone)]
pub(super) struct CpuLayerNorm {
    pub(super) weight: HostF32, // (e,)
    pub(super) bias: HostF32,   // (e,)
    pub(super) eps: f64,
}

impl CpuLayerNorm {
    fn new(norm: &LayerNorm) -> Option<Self> {
        let (weight, bias, eps) = norm.parts();
        Some(Self {
            weight: HostF32::new(weight)?,
            bias: HostF32::new(bias)?,
            eps,
        })
    }
}

#[derive(Clone)]
pub(super) struct CpuAttention {
    pub(super) c_attn: CpuLinear, // e -> 3e
    pub(super) c_proj: CpuLinear, // e -> e
    pub(super) n_head: usize,
    pub(super) head_dim: usize,
    /// How keys and values are cached: in f32, or in f16 beside 8-bit weights. The cache is
    /// the 8-bit model's largest buffer after its weights (GPT-2 small: 2.4 MB per 32 tokens
    /// in f32); f16 halves it, as llama.cpp does, and its rounding (1 part in 2,000) is small
    /// next to that of the weights.
    pub(super) cached_dtype: DType,
}

#[derive(Clone)]
pub(super) struct CpuMlp {
    pub(super) c_fc: CpuLinear,   // e -> i
    pub(super) c_proj: CpuLinear, // i -> e
    pub(super) activation: Activation,
}

#[derive(Clone)]
pub(super) struct CpuBlock {
    pub(super) ln_1: CpuLayerNorm,
    pub(super) attn: CpuAttention,
    pub(super) ln_2: CpuLayerNorm,
    pub(super) mlp: CpuMlp,
}

impl CpuBlock {
    fn new(block: &Block) -> Option<Self> {
        let (ln_1, attn, ln_2, mlp) = block.parts();
        let (c_attn, c_proj) = attn.projections();
        let (n_head, head_dim) = attn.heads();
        let c_attn = CpuLinear::new(c_attn)?;
        let cached_dtype = match c_attn.weight {
            Matrix::Dense { .. } => DType::F32,
            Matrix::Q8(_) | Matrix::Other(_) => DType::F16,
        };
        let (c_fc, mlp_proj, activation) = mlp.parts();
        Some(Self {
            ln_1: CpuLayerNorm::new(ln_1)?,
            attn: CpuAttention {
                c_attn,
                c_proj: CpuLinear::new(c_proj)?,
                n_head,
                head_dim,
                cached_dtype,
            },
            ln_2: CpuLayerNorm::new(ln_2)?,
            mlp: CpuMlp {
                c_fc: CpuLinear::new(c_fc)?,
                c_proj: CpuLinear::new(mlp_proj)?,
                activation,
            },
        })
    }
}

/// The output head, (v, e): `logits = x @ W^T`.
#[derive(Clone)]
pub(super) enum CpuHead {
    /// f32 rows, usually the token embeddings themselves.
    Rows(HostF32),
    Q8(HostQ8),
    /// As [`Matrix::Other`].
    Other(QMatMul),
}

/// Every weight of the model as the CPU backend reads it.
#[derive(Clone)]
pub(crate) struct CpuWeights {
    pub(super) wte: TokenRows, // (v, e)
    pub(super) wpe: HostF32,   // (n_positions, e)
    pub(super) blocks: Vec<CpuBlock>,
    pub(super) ln_f: CpuLayerNorm,
    pub(super) head: CpuHead,
    pub(super) n_embd: usize,
    pub(super) vocab: usize,
}

impl std::fmt::Debug for CpuWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuWeights")
            .field("layers", &self.blocks.len())
            .finish_non_exhaustive()
    }
}

impl CpuWeights {
    /// The CPU layout of the model's weights, or `None` when the CPU backend does not apply:
    /// weights on another device, in another dtype than f32 (q8_0 projections and head aside),
    /// strided, or variables being trained.
    pub(crate) fn new(
        wte: Option<&Tensor>,
        wpe: &Tensor,
        blocks: &[Block],
        ln_f: &LayerNorm,
        head: &LmHead,
    ) -> Option<Self> {
        let (stored, product) = head.parts();
        let wte = match (wte, product) {
            (Some(wte), _) => TokenRows::Dense(HostF32::new(wte)?),
            (None, HeadProduct::Q8(q)) => TokenRows::Blocks(HostBlocks::new(q)?),
            (None, _) => return None,
        };
        let (vocab, n_embd) = (head.vocab().ok()?, wpe.dim(1).ok()?);
        let head = match product {
            HeadProduct::Stored => CpuHead::Rows(HostF32::new(stored?)?),
            HeadProduct::Q8(q) => match HostQ8::new(q).ok()? {
                Some(q8) => CpuHead::Q8(q8),
                None => CpuHead::Other(q.clone()),
            },
            HeadProduct::F32(_) => return None,
        };
        let blocks = blocks
            .iter()
            .map(CpuBlock::new)
            .collect::<Option<Vec<_>>>()?;
        Some(Self {
            wte,
            wpe: HostF32::new(wpe)?,
            blocks,
            ln_f: CpuLayerNorm::new(ln_f)?,
            head,
            n_embd,
            vocab,
        })
    }

    /// The dtype the KV cache holds beside these weights.
    pub(crate) fn cached_dtype(&self) -> DType {
        self.blocks
            .first()
            .map_or(DType::F32, |block| block.attn.cached_dtype)
    }
}
