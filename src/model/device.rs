//! The one place where the compute device and the weight dtype are chosen.

use candle_core::{DType, Device};

use crate::error::{Error, Result};

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
            _ => Err(format!(
                "unknown dtype \"{s}\" (expected auto, f32, f16, bf16 or q8_0)"
            )),
        }
    }
}

/// Opens the requested device. `Auto` prefers CUDA, then Metal, then the CPU.
pub fn select_device(request: DeviceRequest) -> Result<Device> {
    match request {
        DeviceRequest::Cpu => Ok(Device::Cpu),
        DeviceRequest::Cuda(ordinal) => {
            if !cfg!(feature = "cuda") {
                return Err(Error::Usage(
                    "--device cuda: this build has no CUDA support; rebuild with `cargo build --release --features cuda`".into(),
                ));
            }
            Device::new_cuda(ordinal)
                .map_err(|e| Error::Other(format!("cannot open cuda:{ordinal}: {e}")))
        }
        DeviceRequest::Metal => {
            if !cfg!(feature = "metal") {
                return Err(Error::Usage(
                    "--device metal: this build has no Metal support; rebuild with `cargo build --release --features metal`".into(),
                ));
            }
            Device::new_metal(0).map_err(|e| Error::Other(format!("cannot open metal: {e}")))
        }
        DeviceRequest::Auto => {
            if cfg!(feature = "cuda") {
                if let Ok(device) = Device::new_cuda(0) {
                    return Ok(device);
                }
            }
            if cfg!(feature = "metal") {
                if let Ok(device) = Device::new_metal(0) {
                    return Ok(device);
                }
            }
            Ok(Device::Cpu)
        }
    }
}

/// f32 on the CPU (fast there and exact); bf16 on CUDA, f16 on Metal.
pub fn select_dtype(request: DTypeRequest, device: &Device) -> DType {
    match request {
        DTypeRequest::Exact(dtype) => dtype,
        DTypeRequest::Q8_0 => DType::F32,
        DTypeRequest::Auto => match device {
            Device::Cpu => DType::F32,
            Device::Cuda(_) => DType::BF16,
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
