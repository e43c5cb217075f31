//! The one place where the compute device and the weight dtype are chosen.

use candle_core::{DType, Device};

use crate::error::{Error, Result};
use crate::model::Gpt2Config;

/// What the user asked for with `--device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceRequest {
    Auto,
    Cpu,
    Cuda(usize),
    Metal,
}

impl std::str::FromStr for DeviceRequest {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            "metal" => Ok(Self::Metal),
            _ => match s.strip_prefix("cuda:").map(str::parse) {
                Some(Ok(n)) => Ok(Self::Cuda(n)),
                _ => Err(format!(
                    "unknown device \"{s}\" (expected auto, cpu, cuda, cuda:N or metal)"
                )),
            },
        }
    }
}

/// What the user asked for with `--dtype`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DTypeRequest {
    Auto,
    Exact(DType),
    /// 8-bit weights (GGML q8_0) with f32 activations, quantized at load.
    Q8_0,
    /// 4-bit weights (GGML q4_0, blocks of 32), quantized at load.
    Q4_0,
    /// 4-bit weights (GGML q4_K, super-blocks of 256), quantized at load.
    Q4K,
}

impl DTypeRequest {
    /// The block format the weights are quantized to at load, if any.
    pub fn quant_type(self) -> Option<crate::model::q8::QuantType> {
        use crate::model::q8::QuantType;
        match self {
            Self::Q8_0 => Some(QuantType::Q8_0),
            Self::Q4_0 => Some(QuantType::Q4_0),
            Self::Q4K => Some(QuantType::Q4K),
            Self::Auto | Self::Exact(_) => None,
        }
    }
}

impl std::str::FromStr for DTypeRequest {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "f32" => Ok(Self::Exact(DType::F32)),
            "f16" => Ok(Self::Exact(DType::F16)),
            "bf16" => Ok(Self::Exact(DType::BF16)),
            "q8_0" => Ok(Self::Q8_0),
            "q4_0" => Ok(Self::Q4_0),
            "q4_k" | "q4_K" => Ok(Self::Q4K),
            _ => Err(format!(
                "unknown dtype \"{s}\" (expected auto, f32, f16, bf16, q8_0, q4_0 or q4_k)"
            )),
        }
    }
}

/// Opens the requested device. `Auto` prefers CUDA, then Metal, then the CPU.
pub fn select_device(request: DeviceRequest) -> Result<Device> {
    select_device_explained(request).map(|(device, _)| device)
}

/// Like [`select_device`], and for `Auto` a note saying which device it chose and why.
pub fn select_device_explained(request: DeviceRequest) -> Result<(Device, Option<String>)> {
    match request {
        DeviceRequest::Cpu => Ok((Device::Cpu, None)),
        DeviceRequest::Cuda(ordinal) => {
            if !cfg!(feature = "cuda") {
                return Err(Error::Usage(
                    "--device cuda: this build has no CUDA support; rebuild with `cargo build --release --features cuda`".into(),
                ));
            }
            Device::new_cuda(ordinal).map(|d| (d, None)).map_err(|e| {
                Error::Other(format!("cannot open cuda:{ordinal}: {}", first_line(&e)))
            })
        }
        DeviceRequest::Metal => {
            if !cfg!(feature = "metal") {
                return Err(Error::Usage(
                    "--device metal: this build has no Metal support; rebuild with `cargo build --release --features metal`".into(),
                ));
            }
            Device::new_metal(0)
                .map(|d| (d, None))
                .map_err(|e| Error::Other(format!("cannot open metal: {}", first_line(&e))))
        }
        DeviceRequest::Auto => {
            let mut passed = Vec::new();
            if cfg!(feature = "cuda") {
                match Device::new_cuda(0) {
                    Ok(device) => {
                        let note = format!("--device auto: using {}", describe_device(&device));
                        return Ok((device, Some(note)));
                    }
                    Err(e) => passed.push(format!("CUDA: {}", first_line(&e))),
                }
            } else {
                passed.push("no CUDA in this build".to_string());
            }
            if cfg!(feature = "metal") {
                match Device::new_metal(0) {
                    Ok(device) => {
                        let note = format!("--device auto: using {}", describe_device(&device));
                        return Ok((device, Some(note)));
                    }
                    Err(e) => passed.push(format!("Metal: {}", first_line(&e))),
                }
            } else if cfg!(target_os = "macos") {
                passed.push("no Metal in this build".to_string());
            }
            let note = format!("--device auto: using cpu ({})", passed.join("; "));
            Ok((Device::Cpu, Some(note)))
        }
    }
}

fn first_line(e: &dyn std::fmt::Display) -> String {
    let text = e.to_string();
    text.lines().next().unwrap_or_default().trim().to_string()
}

/// The device with its ordinal and, where the backend tells, its name:
/// `cuda:0 (NVIDIA H100 80GB HBM3)`.
pub fn describe_device(device: &Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        #[cfg(feature = "cuda")]
        Device::Cuda(d) => {
            let ctx = d.cuda_stream().context().clone();
            match ctx.name() {
                Ok(name) => format!("cuda:{} ({name})", ctx.ordinal()),
                Err(_) => format!("cuda:{}", ctx.ordinal()),
            }
        }
        #[cfg(not(feature = "cuda"))]
        Device::Cuda(_) => "cuda".into(),
        Device::Metal(_) => "metal".into(),
    }
}

/// Whether the GPU computes in bf16 natively (CUDA compute capability 8.0 or newer).
fn cuda_has_bf16(device: &Device) -> bool {
    #[cfg(feature = "cuda")]
    if let Device::Cuda(d) = device {
        return d
            .cuda_stream()
            .context()
            .compute_capability()
            .is_ok_and(|(major, _)| major >= 8);
    }
    let _ = device;
    true
}

/// f32 on the CPU (fast there and exact); bf16 on CUDA (f16 on GPUs older than Ampere,
/// which lack bf16 arithmetic), f16 on Metal.
pub fn select_dtype(request: DTypeRequest, device: &Device) -> DType {
    match request {
        DTypeRequest::Exact(dtype) => dtype,
        DTypeRequest::Q8_0 | DTypeRequest::Q4_0 | DTypeRequest::Q4K => DType::F32,
        DTypeRequest::Auto => match device {
            Device::Cpu => DType::F32,
            Device::Cuda(_) if cuda_has_bf16(device) => DType::BF16,
            Device::Cuda(_) => DType::F16,
            Device::Metal(_) => DType::F16,
        },
    }
}

pub fn device_name(device: &Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        Device::Cuda(_) => "cuda".into(),
        Device::Metal(_) => "metal".into(),
    }
}

pub fn dtype_name(dtype: DType) -> &'static str {
    dtype.as_str()
}

/// Bytes of a KV cache of `dtype` values over the model's whole window.
pub fn kv_cache_bytes(config: &Gpt2Config, dtype: DType) -> u64 {
    let values = 2 * config.n_layer * config.n_positions * config.n_embd;
    (values * dtype.size_in_bytes()) as u64
}

/// Memory a model needs on its device, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// The weights in the compute dtype.
    pub weights: u64,
    /// The KV cache at the full window.
    pub cache: u64,
    /// Activations of a full-window forward pass (attention scores in f32, all logits).
    pub work: u64,
    /// Extra bytes held only while loading (a PyTorch pickle is read whole before conversion).
    pub loading: u64,
}

impl MemoryEstimate {
    pub fn new(config: &Gpt2Config, dtype: DType, loading: u64) -> Self {
        let (v, p, e, l) = (
            config.vocab_size as u64,
            config.n_positions as u64,
            config.n_embd as u64,
            config.n_layer as u64,
        );
        let i = config.mlp_width() as u64;
        let per_layer = 4 * e + 3 * e * e + 3 * e + e * e + e + 2 * e * i + i + e;
        let params = v * e + p * e + l * per_layer + 2 * e;
        let size = dtype.size_in_bytes() as u64;
        let h = config.n_head as u64;
        Self {
            weights: params * size,
            cache: kv_cache_bytes(config, dtype),
            work: 2 * h * p * p * 4 + 8 * p * (e + i) * 4 + p * v * 4,
            loading,
        }
    }

    /// Peak: everything at once, plus 5% for allocator slack.
    pub fn total(&self) -> u64 {
        let sum = self.weights + self.cache + self.work + self.loading;
        sum + sum / 20
    }
}

/// Bytes free for a new allocation on `device`, and where that figure comes from; `None`
/// where the backend cannot tell.
pub fn available_memory(device: &Device) -> Option<(u64, &'static str)> {
    match device {
        Device::Cpu => cpu_available().map(|b| (b, "MemAvailable in /proc/meminfo")),
        #[cfg(feature = "cuda")]
        Device::Cuda(d) => d
            .cuda_stream()
            .context()
            .mem_get_info()
            .ok()
            .map(|(free, _total)| (free as u64, "free GPU memory")),
        _ => None,
    }
}

fn cpu_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_meminfo(&text)
}

fn parse_meminfo(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Fails with a clear message when `estimate` exceeds what `device` has free. Set
/// `GPT2_TUI_NO_MEMORY_CHECK=1` to skip the check.
pub fn check_memory(
    device: &Device,
    dtype: DType,
    estimate: &MemoryEstimate,
    model: &str,
) -> Result<()> {
    if std::env::var_os("GPT2_TUI_NO_MEMORY_CHECK").is_some_and(|v| v != "0") {
        return Ok(());
    }
    let Some((available, source)) = available_memory(device) else {
        return Ok(());
    };
    memory_verdict(
        estimate,
        available,
        source,
        device_name(device).as_str(),
        dtype,
        model,
    )
}

fn memory_verdict(
    estimate: &MemoryEstimate,
    available: u64,
    source: &str,
    device: &str,
    dtype: DType,
    model: &str,
) -> Result<()> {
    use super::human_bytes;
    let needed = estimate.total();
    if needed <= available {
        return Ok(());
    }
    let hint = if dtype == DType::F32 {
        let half = MemoryEstimate {
            weights: estimate.weights / 2,
            cache: estimate.cache / 2,
            ..*estimate
        };
        format!(
            "try --dtype bf16 or f16 (about {}), a smaller model, or free some memory",
            human_bytes(half.total())
        )
    } else {
        "try a smaller model or free some memory".to_string()
    };
    Err(Error::Other(format!(
        "model {model} in {} needs about {} on {device} ({} of weights, {} of KV cache, {} of working memory{}) but only {} is available ({source}); {hint} (GPT2_TUI_NO_MEMORY_CHECK=1 skips this check)",
        dtype.as_str(),
        human_bytes(needed),
        human_bytes(estimate.weights),
        human_bytes(estimate.cache),
        human_bytes(estimate.work),
        if estimate.loading > 0 {
            format!(", {} while loading", human_bytes(estimate.loading))
        } else {
            String::new()
        },
        human_bytes(available),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_counts_gpt2_parameters() {
        let cfg = Gpt2Config::gpt2_small();
        let est = MemoryEstimate::new(&cfg, DType::F32, 0);
        // 124,439,808 parameters in GPT-2 small.
        assert_eq!(est.weights, 124_439_808 * 4);
        assert_eq!(
            MemoryEstimate::new(&cfg, DType::BF16, 0).weights,
            124_439_808 * 2
        );
        assert_eq!(est.cache, 2 * 12 * 1024 * 768 * 4);
    }

    #[test]
    fn verdict_names_the_sizes_and_a_way_out() {
        let cfg = Gpt2Config::gpt2_small();
        let est = MemoryEstimate::new(&cfg, DType::F32, 0);
        assert!(memory_verdict(&est, 64 << 30, "test", "cpu", DType::F32, "gpt2").is_ok());
        let err = memory_verdict(&est, 100 << 20, "MemAvailable", "cpu", DType::F32, "gpt2")
            .unwrap_err()
            .to_string();
        assert!(err.contains("gpt2") && err.contains("needs about"), "{err}");
        assert!(err.contains("104.9 MB is available"), "{err}");
        assert!(err.contains("--dtype bf16"), "{err}");
        assert!(!err.contains('\n'));
    }

    #[test]
    fn meminfo_is_parsed() {
        let text =
            "MemTotal:       24000000 kB\nMemFree:         1000 kB\nMemAvailable:   20000000 kB\n";
        assert_eq!(parse_meminfo(text), Some(20_000_000 * 1024));
        assert_eq!(parse_meminfo("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn auto_on_a_cpu_build_says_why() {
        if cfg!(feature = "cuda") || cfg!(feature = "metal") {
            return;
        }
        let (device, note) = select_device_explained(DeviceRequest::Auto).unwrap();
        assert!(device.is_cpu());
        let note = note.unwrap();
        assert!(
            note.contains("cpu") && note.contains("no CUDA in this build"),
            "{note}"
        );
    }
}
