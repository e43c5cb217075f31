//! Weights in GGML's block formats: q8_0 (8-bit blocks of 32 values), and the 4-bit q4_0 and
//! q4_k that `--dtype` can also ask for (any type a GGUF file holds is stored the same way):
//! how the layers store them, how the loader and [`super::Gpt2::quantize`] make them, and the
//! product of f32 rows with them (the compact-weight kernels of `kernels::q8` for q8_0 on the
//! CPU, candle's for every other type and elsewhere).

use candle_core::quantized::{GgmlDType, QMatMul, QStorage, QTensor};
use candle_core::{DType, Device, Module, Result, Tensor};

/// Quantized kernels work on blocks of 32 along the input dimension.
pub const Q8_BLOCK: usize = 32;

/// A block format `--dtype` quantizes to at load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuantType {
    /// 8-bit blocks of 32 with an f16 scale (8.5 bits a weight).
    Q8_0,
    /// 4-bit blocks of 32 with an f16 scale (4.5 bits a weight).
    Q4_0,
    /// 4-bit super-blocks of 256 with 6-bit sub-block scales and minimums (4.5 bits a weight).
    Q4K,
}

impl QuantType {
    pub fn ggml(self) -> GgmlDType {
        match self {
            Self::Q8_0 => GgmlDType::Q8_0,
            Self::Q4_0 => GgmlDType::Q4_0,
            Self::Q4K => GgmlDType::Q4K,
        }
    }

    /// The input widths a matrix must be a multiple of.
    pub fn block(self) -> usize {
        self.ggml().block_size()
    }

    /// The `--dtype` spelling.
    pub fn name(self) -> &'static str {
        match self {
            Self::Q8_0 => "q8_0",
            Self::Q4_0 => "q4_0",
            Self::Q4K => "q4_k",
        }
    }
}

thread_local! {
    static QUANTIZED_HERE: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// How many matrices this thread has quantized so far. A load reports the difference, which
/// tells a start that quantized from one that read a cached quantized model (and lets tests
/// check which one happened without parsing messages).
pub fn matrices_quantized_on_this_thread() -> usize {
    QUANTIZED_HERE.with(std::cell::Cell::get)
}

fn count_quantized_matrix() {
    QUANTIZED_HERE.with(|n| n.set(n.get() + 1));
}

/// Projection weights already in q8_0, by full name (`h.0.attn.c_attn.weight`): the loader
/// quantizes each as it is read, so the f32 copies never all sit in memory at once.
pub type QuantizedWeights = std::collections::HashMap<String, QMatMul>;

/// The `kind` form of a dense (in, out) weight, stored (out, in) as the quantized kernels want.
pub fn quantize_weight(w: &Tensor, kind: QuantType) -> Result<QMatMul> {
    count_quantized_matrix();
    QMatMul::from_qtensor(QTensor::quantize(&w.t()?.contiguous()?, kind.ggml())?)
}

/// `kind` blocks of a row-major (rows, width) matrix, quantized a slice of rows at a time: the
/// quantizer copies its input to f32 first, which for the whole head would add a third of
/// GPT-2 small's f32 size to the peak memory.
pub(super) fn quantize_rows(w: &Tensor, kind: QuantType) -> Result<QTensor> {
    const ROWS_PER_SLICE: usize = 2048;
    count_quantized_matrix();
    let (rows, width) = w.dims2()?;
    let kind = kind.ggml();
    if !w.device().is_cpu() {
        return QTensor::quantize(&w.to_dtype(DType::F32)?, kind);
    }
    let mut bytes = Vec::with_capacity(rows * width / kind.block_size() * kind.type_size());
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
        bytes.extend_from_slice(&QTensor::quantize(&slice, kind)?.data()?);
    }
    let storage = QStorage::from_data(std::borrow::Cow::Owned(bytes), w.device(), kind)?;
    QTensor::new(storage, (rows, width))
}

/// `x @ W^T` for f32 rows `x` (m, k) and quantized `W` (n, k): the compact-weight kernels on the
/// CPU, the library's elsewhere.
pub(super) fn quantized_matmul(q: &QMatMul, x: &Tensor) -> Result<Tensor> {
    if let QMatMul::QTensor(w) = q {
        if let Some(y) = crate::kernels::q8::matmul_t(x, w)? {
            return Ok(y);
        }
    }
    q.forward(x)
}

/// `y += xs @ W^T` for the f32 rows `xs` (m x k values, row after row) and quantized `W`
/// (n, k): the CPU backend's product for the block formats it has no kernel of its own for.
pub(crate) fn add_quantized_rows(q: &QMatMul, xs: &[f32], y: &mut [f32]) -> Result<()> {
    let n = match q {
        QMatMul::QTensor(w) => w.shape().dims2()?.0,
        QMatMul::Tensor(w) | QMatMul::TensorF16(w) => w.dims2()?.0,
    };
    let m = y.len() / n;
    if m == 0 || y.len() != m * n || !xs.len().is_multiple_of(m) {
        candle_core::bail!(
            "quantized product of {} inputs into {} outputs",
            xs.len(),
            y.len()
        );
    }
    if let QMatMul::QTensor(w) = q {
        if crate::kernels::q4_q5::add_rows_times_t(xs, w, y)?
            || crate::kernels::k_quants::add_rows_times_t(xs, w, y)?
        {
            return Ok(());
        }
    }
    let x = Tensor::from_slice(xs, (m, xs.len() / m), &Device::Cpu)?;
    let product = quantized_matmul(q, &x)?.flatten_all()?.to_vec1::<f32>()?;
    y.iter_mut().zip(&product).for_each(|(y, p)| *y += p);
    Ok(())
}

/// [`quantized_matmul`] for one row given as a slice, without tensors on the CPU path.
pub(super) fn quantized_matvec(q: &QMatMul, x: &[f32]) -> Result<Vec<f32>> {
    if let QMatMul::QTensor(w) = q {
        if let Some(y) = crate::kernels::q8::rows_times_t(x, w)? {
            return Ok(y);
        }
        let mut y = vec![0f32; w.shape().dims2()?.0];
        if crate::kernels::q4_q5::add_rows_times_t(x, w, &mut y)?
            || crate::kernels::k_quants::add_rows_times_t(x, w, &mut y)?
        {
            return Ok(y);
        }
    }
    let x = Tensor::from_slice(x, (1, x.len()), &Device::Cpu)?;
    q.forward(&x)?.flatten_all()?.to_vec1()
}
