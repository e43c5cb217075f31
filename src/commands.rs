//! What each command does, on top of the library; `main` only maps the result to an exit code.

use std::io::{IsTerminal, Write};

use crate::cli::{Cli, Command, CommonArgs, ReportFormat};
use crate::config::Config;
use crate::error::{Error, Result};
use candle_core::{DType, Device};

use crate::model::device::{
    check_memory, describe_device, select_device_explained, select_dtype, DTypeRequest,
    MemoryEstimate,
};
use crate::model::hub::{human_bytes, DownloadEvent, StderrProgress};
use crate::model::loader::WeightFiles;
use crate::model::{loader, source};
use crate::pipe::{self, PipeRequest};
use crate::session::{GenerateOptions, Session};

/// Applies `--threads` (or the config's `threads`) before any worker pool starts.
pub fn configure_threads(common: &CommonArgs, config: &Config) {
    let threads = common
        .threads
        .map(usize::from)
        .or(config.threads)
        .filter(|&n| n > 0);
    if let Some(n) = threads {
        // candle's CPU kernels size their pools from this variable.
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
}

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
    pub load_time: std::time::Duration,
}

/// Loads the model named by the flags or the config, showing download progress on stderr.
pub fn load_session(common: &CommonArgs, config: &Config) -> Result<Session> {
    let mut progress = StderrProgress::new();
    load_session_with(common, config, &mut |e| progress.event(e)).map(|(session, _)| session)
}

/// Loads the model named by the flags or the config: resolves it (a hub model from the cache
/// or downloaded, reporting to `on_event`), opens the device, checks that the model fits in the
/// memory the device has free, and loads the weights.
pub fn load_session_with(
    common: &CommonArgs,
    config: &Config,
    on_event: &mut dyn FnMut(&DownloadEvent),
) -> Result<(Session, LoadReport)> {
    let started = std::time::Instant::now();
    let spec = common.model_spec(config);
    // Flags first, so a bad one fails before any download.
    let device_request = common.device_request(config).map_err(Error::Usage)?;
    let dtype_request = common.dtype_request(config).map_err(Error::Usage)?;
    let files = source::resolve_with(&spec, on_event)?;
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
    let loaded = if dtype_request == DTypeRequest::Q8_0 {
        let (loaded, skipped) = loader::load_q8_0(&files, &device)?;
        if skipped > 0 {
            eprintln!("gpt2-tui: note: {skipped} matrices kept in f32 (q8_0 needs widths that are multiples of 32)");
        }
        loaded
    } else {
        loader::load(&files, &device, dtype)?
    };
    crate::model::allocator::keep_freed_buffers();
    let session = Session::new(loaded);
    let report = LoadReport {
        device: describe_device(&device),
        device_note,
        dtype,
        memory,
        load_time: started.elapsed(),
    };
    Ok((session, report))
}

pub fn run(cli: Cli) -> Result<()> {
    let config = Config::load(cli.common.config.as_deref())?;
    configure_threads(&cli.common, &config);
    if cli.list_models {
        return crate::models_cmd::run(ReportFormat::Text);
    }
    match &cli.command {
        Some(Command::Models { format }) => crate::models_cmd::run(*format),
        Some(Command::Perplexity {
            file,
            stride,
            format,
        }) => perplexity(&cli.common, &config, file, *stride, *format),
        Some(Command::Tokenize { text }) => tokenize(&cli.common, &config, text.as_deref()),
        Some(Command::Info { format }) => info(&cli.common, &config, *format),
        None => {
            let interactive = cli.generate.prompt.is_none()
                && std::io::stdin().is_terminal()
                && std::io::stdout().is_terminal();
            if interactive {
                interactive_mode(&cli, &config)
            } else {
                pipe_mode(&cli, &config)
            }
        }
    }
}

fn pipe_mode(cli: &Cli, config: &Config) -> Result<()> {
    let prompt = match &cli.generate.prompt {
        Some(p) if p.is_empty() => return Err(Error::Usage("--prompt is empty".into())),
        Some(p) => p.clone(),
        None => pipe::read_prompt(std::io::stdin().lock())?,
    };
    let params = cli.generate.sampling(config);
    params.validate().map_err(Error::Usage)?;
    let mut progress = StderrProgress::new();
    let (mut session, report) = load_session_with(&cli.common, config, &mut |e| progress.event(e))?;
    // `--device auto` says which device it took when that is a GPU, or when asked for stats.
    if let Some(note) = &report.device_note {
        if cli.generate.stats || !session.device().is_cpu() {
            eprintln!("gpt2-tui: {note}");
        }
    }
    if cli.generate.stats {
        eprintln!(
            "gpt2-tui: loaded {} ({} parameters) on {} in {}, {:.2} s: {} of weights, {} of KV cache at the full window",
            session.name,
            session.parameter_count(),
            report.device,
            report.dtype.as_str(),
            report.load_time.as_secs_f64(),
            human_bytes(session.parameter_count() as u64 * report.dtype.size_in_bytes() as u64),
            human_bytes(report.memory.cache),
        );
    }
    let request = PipeRequest {
        prompt,
        params,
        options: GenerateOptions {
            stop: cli.generate.stop.clone(),
            ignore_eos: cli.generate.ignore_eos,
            top_n: 0,
        },
        format: cli.generate.format,
        stats: cli.generate.stats,
    };
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    pipe::run(
        &mut session,
        &request,
        &mut stdout.lock(),
        &mut stderr.lock(),
    )
}

fn interactive_mode(cli: &Cli, config: &Config) -> Result<()> {
    crate::ui::run(cli, config)
}

fn perplexity(
    common: &CommonArgs,
    config: &Config,
    file: &std::path::Path,
    stride: Option<usize>,
    format: ReportFormat,
) -> Result<()> {
    let bytes = std::fs::read(file).map_err(|e| Error::io(file, e))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        Error::Other(format!(
            "{}: not valid UTF-8 (byte {})",
            file.display(),
            e.utf8_error().valid_up_to()
        ))
    })?;
    let session = load_session(common, config)?;
    let score = crate::perplexity::score(&session, &text, stride)?;
    let mut out = std::io::stdout().lock();
    let written = match format {
        ReportFormat::Json => writeln!(out, "{}", serde_json::to_string(&score).expect("plain data")),
        ReportFormat::Text => writeln!(
            out,
            "file: {}\nmodel: {}\ntokens: {} ({} scored, window {}, stride {})\nmean nll: {:.6}\nperplexity: {:.4}\nbits per byte: {:.4}",
            file.display(),
            session.name,
            score.tokens,
            score.tokens_scored,
            score.window,
            score.stride,
            score.mean_nll,
            score.perplexity,
            score.bits_per_byte
        ),
    };
    written.map_err(|e| Error::Io {
        path: "stdout".into(),
        source: e,
    })
}

fn stdout_error(e: std::io::Error) -> Error {
    Error::Io {
        path: "stdout".into(),
        source: e,
    }
}

fn tokenize(common: &CommonArgs, config: &Config, text: Option<&str>) -> Result<()> {
    let text = match text {
        Some(t) => t.to_string(),
        None => pipe::read_prompt(std::io::stdin().lock())?,
    };
    let session = load_session(common, config)?;
    let mut out = std::io::stdout().lock();
    for row in crate::inspect::token_rows(session.tokenizer(), &text)? {
        writeln!(out, "{}", serde_json::to_string(&row).expect("plain data"))
            .map_err(stdout_error)?;
    }
    Ok(())
}

fn info(common: &CommonArgs, config: &Config, format: ReportFormat) -> Result<()> {
    let session = load_session(common, config)?;
    let anatomy = crate::inspect::Anatomy::of(session.config(), session.model().has_tied_head());
    let bytes_per = session.dtype().size_in_bytes();
    let mut out = std::io::stdout().lock();
    match format {
        ReportFormat::Json => {
            let report = serde_json::json!({
                "model": session.name,
                "config": session.config(),
                "device": crate::model::device::device_name(session.device()),
                "dtype": session.dtype().as_str(),
                "parameters": anatomy.total,
                "checkpoint_parameters": session.parameter_count(),
                "memory_bytes": anatomy.total * bytes_per,
                "tied_head": anatomy.tied_head,
                "parts": anatomy.parts,
                "summary": anatomy.summary(),
            });
            writeln!(out, "{report}").map_err(stdout_error)
        }
        ReportFormat::Text => {
            let c = session.config();
            let mut text = format!(
                "model: {}\nlayers {}, heads {} (head size {}), width {}, MLP width {}, window {}, vocabulary {}\n\n",
                session.name,
                c.n_layer,
                c.n_head,
                c.head_dim(),
                c.n_embd,
                c.mlp_width(),
                c.n_positions,
                c.vocab_size
            );
            for part in anatomy.summary() {
                let share = 100.0 * part.parameters as f64 / anatomy.total as f64;
                let scope = if ["attention", "MLP", "layer norms"]
                    .iter()
                    .any(|p| part.name.starts_with(p))
                {
                    format!(" (x{} blocks)", c.n_layer)
                } else {
                    String::new()
                };
                text += &format!(
                    "{:>14}  {:>5.1}%  {}{}\n",
                    group_digits(part.parameters),
                    share,
                    part.name,
                    scope
                );
            }
            text += &format!(
                "{:>14}  100.0%  total, {:.1} MB in {}\n",
                group_digits(anatomy.total),
                (anatomy.total * bytes_per) as f64 / 1e6,
                session.dtype().as_str()
            );
            out.write_all(text.as_bytes()).map_err(stdout_error)
        }
    }
}

/// 124439808 -> "124,439,808".
fn group_digits(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
