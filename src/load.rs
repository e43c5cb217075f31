//! Loading a model for any command and for the interface: resolve it (bundled, folder, hub),
//! open the device, check the memory, read the weights, and build a [`Session`]. Download
//! progress is reported here, by the caller, not by the downloader.

use std::time::{Duration, Instant};

use candle_core::{DType, Device};

use crate::cli::CommonArgs;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::generate::session::Session;
use crate::runtime::device::{
    check_memory, describe_device, select_device_explained, select_dtype, MemoryEstimate,
};
use crate::runtime::human_bytes;
use crate::weights::hub::cache_dir;
pub use crate::weights::hub::DownloadEvent;
use crate::weights::loader::{self, WeightFiles};
use crate::weights::quantized_cache::{self, CacheUse, QuantizedLoad};
use crate::weights::source;

/// What loading a model chose and cost, for a status line or `--stats`.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// `cpu`, `cuda:0 (NVIDIA H100 80GB HBM3)`, ...
    pub device: String,
    /// For `--device auto`: which device it picked and why.
    pub device_note: Option<String>,
    pub dtype: DType,
    /// Memory the model needs on its device (estimated from its config).
    pub memory: MemoryEstimate,
    pub load_time: Duration,
    /// For an 8- or 4-bit `--dtype`: whether the cache was read, what was quantized.
    pub quantized: Option<QuantizedLoad>,
}

impl LoadReport {
    /// The lines stderr should show about the load: cache warnings, where an 8- or 4-bit
    /// model came from, matrices kept in f32. Printed by the commands; the interface, whose
    /// screen stderr would scribble over, does not.
    pub fn notes(&self) -> Vec<String> {
        let Some(q) = &self.quantized else {
            return Vec::new();
        };
        let mut notes: Vec<String> = q
            .warnings
            .iter()
            .map(|w| format!("gpt2-tui: warning: {w}"))
            .collect();
        if q.kept_f32 > 0 {
            notes.push(format!(
                "gpt2-tui: note: {} matrices kept in f32 ({} needs widths that are multiples of {})",
                q.kept_f32,
                q.kind.name(),
                q.kind.block()
            ));
        }
        if !matches!(q.cache, CacheUse::NotCached(_)) {
            notes.push(format!("gpt2-tui: {}", q.summary()));
        }
        notes
    }
}

/// Loads the model named by the flags or the config, showing download progress and the
/// load's notes on stderr.
pub fn load_session(common: &CommonArgs, config: &Config) -> Result<Session> {
    let mut progress = StderrProgress::new();
    let (session, report) = load_session_with(common, config, &mut |e| progress.event(e))?;
    report.notes().iter().for_each(|note| eprintln!("{note}"));
    Ok(session)
}

/// Loads the model named by the flags or the config: resolves it (a hub model from the cache
/// or downloaded, reporting to `on_event`), opens the device, checks that the model fits in the
/// memory the device has free, and loads the weights.
pub fn load_session_with(
    common: &CommonArgs,
    config: &Config,
    on_event: &mut dyn FnMut(&DownloadEvent),
) -> Result<(Session, LoadReport)> {
    let started = Instant::now();
    let spec = common.model_spec(config);
    // Flags first, so a bad one fails before any download.
    let device_request = common.device_request(config).map_err(Error::Usage)?;
    let dtype_request = common.dtype_request(config).map_err(Error::Usage)?;
    let files = source::resolve_gguf_with(&spec, common.gguf_file.as_deref(), on_event)?;
    let (device, device_note) = select_device_explained(device_request)?;
    let dtype = select_dtype(dtype_request, &device);
    let model_config = loader::read_config(&files)?;
    // A PyTorch pickle is read whole into host memory before conversion.
    let loading = match (&files.weights, &device) {
        (WeightFiles::PytorchBin(path), Device::Cpu) => {
            std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
        }
        _ => 0,
    };
    let memory = MemoryEstimate::new(&model_config, dtype, loading);
    check_memory(&device, dtype, &memory, &files.name)?;
    let (loaded, quantized) = match dtype_request.quant_type() {
        Some(kind) => {
            let folders = match common.quantized_cache(config) {
                true => quantized_cache::place::folders(&files),
                false => Vec::new(),
            };
            let (loaded, report) =
                quantized_cache::load(&files, &model_config, &device, kind, &folders)?;
            (loaded, Some(report))
        }
        None => (loader::load(&files, &device, dtype)?, None),
    };
    crate::runtime::allocator::keep_freed_buffers();
    let session = Session::new(loaded);
    let report = LoadReport {
        device: describe_device(&device),
        device_note,
        dtype,
        memory,
        load_time: started.elapsed(),
        quantized,
    };
    Ok((session, report))
}

/// A progress display on stderr for pipe mode: a redrawn line on a terminal, otherwise one
/// line when each file starts and one when it is done.
pub struct StderrProgress {
    tty: bool,
    last_draw: Option<Instant>,
    started: Instant,
    current: Option<String>,
    total: u64,
    model: Option<String>,
}

impl Default for StderrProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl StderrProgress {
    pub fn new() -> Self {
        use std::io::IsTerminal;
        Self {
            tty: std::io::stderr().is_terminal(),
            last_draw: None,
            started: Instant::now(),
            current: None,
            total: 0,
            model: None,
        }
    }

    pub fn event(&mut self, event: &DownloadEvent) {
        use std::io::Write;
        let mut err = std::io::stderr().lock();
        match event {
            DownloadEvent::Contacting { model } => {
                // Said with the first download, so that a failed lookup prints one line only.
                self.model = Some(model.to_string());
            }
            DownloadEvent::Start { file, total } => {
                // hf-hub announces a file twice; report it once.
                if self.current.as_deref() != Some(*file) {
                    if let Some(model) = self.model.take() {
                        let _ = writeln!(
                            err,
                            "gpt2-tui: downloading {model} into {}",
                            cache_dir().display()
                        );
                    }
                    self.current = Some(file.to_string());
                    self.started = Instant::now();
                    self.last_draw = None;
                    self.total = *total;
                    // Without a terminal: a line when a large file starts, one when each ends.
                    if !self.tty && *total >= 10_000_000 {
                        let _ = writeln!(
                            err,
                            "gpt2-tui: downloading {file} ({})",
                            human_bytes(*total)
                        );
                    }
                }
            }
            DownloadEvent::Progress { file, done, total } => {
                if !self.tty {
                    return;
                }
                let now = Instant::now();
                if self
                    .last_draw
                    .is_some_and(|t| now.duration_since(t) < Duration::from_millis(100))
                    && done < total
                {
                    return;
                }
                self.last_draw = Some(now);
                let secs = now.duration_since(self.started).as_secs_f64().max(1e-3);
                let pct = if *total > 0 {
                    *done as f64 * 100.0 / *total as f64
                } else {
                    0.0
                };
                let width = 24usize;
                let filled = ((pct / 100.0) * width as f64).round() as usize;
                let _ = write!(
                    err,
                    "\r\x1b[2Kgpt2-tui: {file} [{}{}] {} / {} {:5.1}% {}/s",
                    "#".repeat(filled.min(width)),
                    "-".repeat(width - filled.min(width)),
                    human_bytes(*done),
                    human_bytes(*total),
                    pct,
                    human_bytes((*done as f64 / secs) as u64),
                );
                let _ = err.flush();
            }
            DownloadEvent::Done { file } => {
                if self.current.as_deref() == Some(*file) {
                    self.current = None;
                    let secs = self.started.elapsed().as_secs_f64();
                    if self.tty {
                        let _ = writeln!(err);
                    } else {
                        let _ = writeln!(
                            err,
                            "gpt2-tui: downloaded {file} ({}, {secs:.1} s)",
                            human_bytes(self.total)
                        );
                    }
                }
            }
        }
    }
}
