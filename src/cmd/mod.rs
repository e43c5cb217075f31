//! One module per subcommand; [`run`] picks one from the command line. `main` only maps the
//! result to an exit code.

mod info;
pub mod models;
mod perplexity;
pub mod pipe;
mod score;
mod serve;
mod sessions;
mod tokenize;

use std::io::IsTerminal;

use crate::cli::{Cli, Command, CommonArgs, OutputFormat, ReportFormat};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::generate::bias::resolve_all;
use crate::generate::session::GenerateOptions;
use crate::load::{load_session_with, StderrProgress};
use crate::runtime::human_bytes;
use crate::weights::quantized_cache::CacheUse;
use pipe::PipeRequest;

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

pub fn run(cli: Cli) -> Result<()> {
    let config = Config::load(cli.common.config.as_deref())?;
    configure_threads(&cli.common, &config);
    if cli.list_models {
        return models::run(ReportFormat::Text);
    }
    match &cli.command {
        Some(Command::Models { format }) => models::run(*format),
        Some(Command::Sessions { format }) => sessions::run(*format),
        Some(Command::Perplexity {
            file,
            stride,
            format,
        }) => perplexity::run(&cli.common, &config, file, *stride, *format),
        Some(Command::Score {
            file,
            stride,
            top,
            format,
        }) => score::run(
            &cli.common,
            &config,
            score::ScoreRequest {
                file: file.as_deref(),
                stride: *stride,
                top: usize::from(*top),
                format: *format,
            },
        ),
        Some(Command::Serve(args)) => serve::run(&cli.common, &config, args),
        Some(Command::Tokenize { text }) => tokenize::run(&cli.common, &config, text.as_deref()),
        Some(Command::Info { format }) => info::run(&cli.common, &config, *format),
        None => {
            let interactive = cli.generate.prompt.is_none()
                && std::io::stdin().is_terminal()
                && std::io::stdout().is_terminal();
            if interactive {
                interactive_mode(&cli, &config)
            } else if cli.resume.is_some() {
                Err(Error::Usage(
                    "--resume opens the interface: stdin and stdout must be a terminal".into(),
                ))
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
    report.notes().iter().for_each(|note| eprintln!("{note}"));
    if cli.generate.stats {
        let origin = match &report.quantized {
            Some(q) if matches!(q.cache, CacheUse::Read(_)) => " (read from the cache)".into(),
            Some(q) => format!(" ({} matrices quantized)", q.quantized_matrices),
            None => String::new(),
        };
        let (kv_dtype, kv_bytes) = session.kv_cache_at_window();
        eprintln!(
            "gpt2-tui: loaded {} ({} parameters) on {}, {:.2} s{origin}: weights {} in {}, KV cache {} in {} at the full window",
            session.name,
            session.parameter_count(),
            report.device,
            report.load_time.as_secs_f64(),
            session.weight_format(),
            human_bytes(session.weight_bytes()),
            kv_dtype.as_str(),
            human_bytes(kv_bytes),
        );
    }
    // Quoted tokens in the logit bias become ids now that the tokenizer is known.
    let mut params = params;
    params.logit_bias =
        resolve_all(&params.logit_bias, session.tokenizer()).map_err(Error::Usage)?;
    let request = PipeRequest {
        prompt,
        params,
        options: GenerateOptions {
            stop: cli.generate.stop.clone(),
            ignore_eos: cli.generate.ignore_eos,
            // Alternatives are only written in jsonl.
            top_n: match cli.generate.format {
                OutputFormat::Jsonl => cli.generate.top_logprobs.map_or(0, usize::from),
                OutputFormat::Text => 0,
            },
            ..GenerateOptions::default()
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
    crate::tui::run(cli, config)
}

/// The file's text, or all of stdin for `-` or no file.
pub(super) fn read_text(file: Option<&std::path::Path>) -> Result<String> {
    let (bytes, origin) = match file {
        Some(path) if path != std::path::Path::new("-") => (
            std::fs::read(path).map_err(|e| Error::io(path, e))?,
            path.display().to_string(),
        ),
        _ => {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
                .map_err(|e| Error::Other(format!("reading stdin: {e}")))?;
            (bytes, "stdin".to_string())
        }
    };
    String::from_utf8(bytes).map_err(|e| {
        Error::Other(format!(
            "{origin}: not valid UTF-8 (byte {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// The error for a failed write to stdout (a closed pipe ends the program quietly in `main`).
fn stdout_error(e: std::io::Error) -> Error {
    Error::Io {
        path: "stdout".into(),
        source: e,
    }
}
