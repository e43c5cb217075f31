//! The language-model head, logits = x @ W^T for W (v, e), which is usually the token
//! embedding matrix itself (a *tied* head). A quantized tied head on the CPU also serves the
//! token lookups from its blocks, a row dequantized per token as llama.cpp does, so the model
//! holds no second, f32 copy of its largest matrix (154 MB for the 124M shape, 322 MB for XL).

use candle_core::quantized::{QMatMul, QTensor};
use candle_core::{DType, Device, Result, Tensor};

use super::q8::{quantize_rows, quantized_matmul, QuantType};
use crate::kernels;

#[derive(Debug, Clone)]
pub(super) struct LmHead {
    /// (v, e) as stored: the same tensor as the token embeddings unless the checkpoint has
    /// `lm_head.weight`; `None` for a quantized tied head whose blocks serve the lookups too.
    weight: Option<Tensor>,
    /// What the product reads.
    product: HeadProduct,
}

#[derive(Debug, Clone)]
pub(super) enum HeadProduct {
    /// `weight` itself.
    Stored,
    /// An f32 copy of `weight`, which is stored in f16 or bf16: half precision would round the
    /// logits (to 1/16 at |x| near 10 in bf16).
    F32(Tensor),
    /// `weight` in q8_0, or another GGML type from a GGUF file (`weight`, when kept, then
    /// only serves lookups).
    Q8(QMatMul),
}

impl LmHead {
    /// The head of `weight` (v, e).
    pub(super) fn new(weight: Tensor) -> Result<Self> {
        let product = match weight.dtype() {
            DType::F16 | DType::BF16 => HeadProduct::F32(weight.to_dtype(DType::F32)?),
            _ => HeadProduct::Stored,
        };
        Ok(Self {
            weight: Some(weight),
            product,
        })
    }

    /// The head whose product reads `q`, a matrix in a GGML type, with its dense rows (v, e)
    /// when they are kept for lookups.
    pub(super) fn quantized(weight: Option<Tensor>, q: QMatMul) -> Self {
        Self {
            weight,
            product: HeadProduct::Q8(q),
        }
    }

    /// (b, t, e) -> f32 logits (b, t, v).
    pub(super) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, e) = x.dims3()?;
        let x = x.reshape((b * t, e))?; // (b t, e)
        let (x, head) = match (&self.product, &self.weight) {
            (HeadProduct::Q8(q), _) => {
                let logits = quantized_matmul(q, &x.to_dtype(DType::F32)?)?;
                let vocab = logits.dim(1)?;
                return logits.reshape((b, t, vocab));
            }
            (HeadProduct::F32(head), _) => (x.to_dtype(DType::F32)?, head),
            (HeadProduct::Stored, Some(weight)) => (x, weight),
            (HeadProduct::Stored, None) => candle_core::bail!("a dense head without weights"),
        };
        let vocab = head.dim(0)?;
        let fast = if b * t == 1 {
            kernels::single_row_matmul_t(&x, head)?
        } else {
            None
        };
        let logits = match fast {
            Some(logits) => logits,
            None => x.matmul(&head.t()?)?, // (b t, v)
        };
        logits.reshape((b, t, vocab))?.to_dtype(DType::F32)
    }

    /// Stores the head in `kind` when its width allows it; `false` when it does not.
    pub(super) fn quantize(&mut self, kind: QuantType) -> Result<bool> {
        let dense = match &self.weight {
            Some(w) => w.clone(),
            None => self.dense_rows()?,
        };
        if dense.dim(1)? % kind.block() != 0 {
            return Ok(false);
        }
        let q = QMatMul::from_qtensor(quantize_rows(&dense, kind)?)?;
        self.product = HeadProduct::Q8(q);
        Ok(true)
    }

    /// The vocabulary: the rows of the stored matrix, or of the product's.
    pub(super) fn vocab(&self) -> Result<usize> {
        match (&self.weight, &self.product) {
            (Some(w), _) => w.dim(0),
            (None, HeadProduct::Q8(QMatMul::QTensor(q))) => Ok(q.shape().dims2()?.0),
            (None, HeadProduct::Q8(QMatMul::Tensor(w) | QMatMul::TensorF16(w))) => w.dim(0),
            (None, _) => candle_core::bail!("a dense head without weights"),
        }
    }

    pub(super) fn is_quantized(&self) -> bool {
        matches!(self.product, HeadProduct::Q8(_))
    }

    /// The stored (v, e) matrix, when kept, and what the product reads.
    pub(super) fn parts(&self) -> (Option<&Tensor>, &HeadProduct) {
        (self.weight.as_ref(), &self.product)
    }

    /// The blocks of a quantized head in host memory, which can serve token lookups.
    pub(super) fn host_blocks(&self) -> Option<&QTensor> {
        match &self.product {
            HeadProduct::Q8(QMatMul::QTensor(q)) if matches!(q.device(), Device::Cpu) => Some(q),
            _ => None,
        }
    }

    /// Lets go of the dense rows when the blocks in host memory can serve the lookups;
    /// `true` when it did.
    pub(super) fn drop_dense_rows(&mut self) -> bool {
        let droppable = self.host_blocks().is_some();
        if droppable {
            self.weight = None;
        }
        droppable
    }

    /// The head as a dense (v, e) f32 matrix: the stored rows, or the blocks dequantized.
    pub(super) fn dense_rows(&self) -> Result<Tensor> {
        match (&self.weight, &self.product) {
            (Some(w), _) => Ok(w.clone()),
            (None, HeadProduct::Q8(q)) => match q {
                QMatMul::QTensor(q) => q.dequantize(&q.device()),
                QMatMul::Tensor(w) | QMatMul::TensorF16(w) => w.to_dtype(DType::F32),
            },
            (None, _) => candle_core::bail!("a dense head without weights"),
        }
    }

    /// The rows of `ids` (n,) as (n, e) f32: the token embeddings of a head without dense
    /// rows, each dequantized from its blocks.
    pub(super) fn lookup(&self, ids: &Tensor) -> Result<Tensor> {
        let Some(q) = self.host_blocks() else {
            return self.dense_rows()?.embedding(ids);
        };
        let (_, e) = q.shape().dims2()?;
        let ids = ids.to_vec1::<u32>()?;
        let mut rows = vec![0f32; ids.len() * e];
        let blocks = q.data()?;
        for (&id, out) in ids.iter().zip(rows.chunks_exact_mut(e)) {
            kernels::block_rows::dequantize_row(q.dtype(), &blocks, id as usize, out)?;
        }
        Tensor::from_vec(rows, (ids.len(), e), &Device::Cpu)
    }
}
