//! Prefill and decode speed, and peak memory, of the real generation path on a model folder.
//!
//! cargo run --release --example bench -- MODEL_DIR [--threads N] [--prompt-tokens 512]
//!     [--decode-tokens 128] [--dtype f32] [--device cpu] [--runs 3] [--top 10]

use std::time::Instant;

use clap::Parser;
use gpt2_tui::generate::session::{GenerateOptions, Session, Step};
use gpt2_tui::generate::SamplingParams;
use gpt2_tui::runtime::device::{select_device, select_dtype, DTypeRequest, DeviceRequest};
use gpt2_tui::weights::{loader, source};

#[derive(Parser)]
struct Args {
    model: String,
    #[arg(long)]
    threads: Option<usize>,
    #[arg(long, default_value_t = 512)]
    prompt_tokens: usize,
    #[arg(long, default_value_t = 128)]
    decode_tokens: usize,
    #[arg(long, default_value = "auto")]
    dtype: String,
    #[arg(long, default_value = "auto")]
    device: String,
    /// Timed runs; the best is reported (the first run also warms up).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Alternatives collected at each step, as the interface asks for (0 = none).
    #[arg(long, default_value_t = 0)]
    top: usize,
}

/// Bytes of weights in use: q8_0 matrices take 34 bytes per 32 values; embeddings stay f32.
fn weights_bytes(session: &Session) -> usize {
    let bytes = session.dtype().size_in_bytes();
    let total = session.parameter_count() * bytes;
    if session.weight_format() != "q8_0" {
        return total;
    }
    let c = session.config();
    let matrices = c.n_layer * (4 * c.n_embd * c.n_embd + 2 * c.n_embd * c.mlp_width());
    // The head is a q8_0 copy of the embeddings, which stay f32 for lookups.
    let head = c.vocab_size * c.n_embd;
    total - matrices * bytes + (matrices + head) * 34 / 32
}

/// Peak resident memory of this process in MB (10^6 bytes, as the weights), from
/// /proc/self/status, which counts in KiB.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024.0 / 1e6)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(n) = args.threads {
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    let device_request: DeviceRequest = args.device.parse().map_err(anyhow::Error::msg)?;
    let dtype_request: DTypeRequest = args.dtype.parse().map_err(anyhow::Error::msg)?;
    let device = select_device(device_request)?;
    let dtype = select_dtype(dtype_request, &device);
    let started = Instant::now();
    let files = source::resolve(&args.model)?;
    let loaded = match dtype_request.quant_type() {
        Some(kind) => loader::load_quantized(&files, &device, kind)?.0,
        None => loader::load(&files, &device, dtype)?,
    };
    // As the program does once its model is loaded.
    gpt2_tui::runtime::allocator::keep_freed_buffers();
    let mut session = Session::new(loaded);
    let load_s = started.elapsed().as_secs_f64();
    let load_peak_rss_mb = peak_rss_mb();
    let weights_mb = weights_bytes(&session) as f64 / 1e6;

    // A fixed, ordinary prompt: a sentence repeated to the length asked for.
    let sentence = session
        .tokenizer()
        .encode(" The quick brown fox jumps over the lazy dog, and the dog sleeps on.")?;
    let prompt: Vec<u32> = sentence
        .iter()
        .copied()
        .cycle()
        .take(args.prompt_tokens)
        .collect();
    let params = SamplingParams {
        max_tokens: args.decode_tokens,
        ..SamplingParams::default()
    };
    let options = GenerateOptions {
        ignore_eos: true,
        top_n: args.top,
        ..GenerateOptions::default()
    };
    let (mut best_prefill, mut best_decode) = (0f64, 0f64);
    for _ in 0..args.runs.max(1) {
        // Every run prefills the whole prompt, as a first request would.
        session.forget_cache();
        let mut generation = session.generate(&prompt, options.clone(), Some(0))?;
        let mut first = true;
        let mut timer = Instant::now();
        let mut tokens = 0;
        while let Step::Token(_) = generation.step(&params)? {
            if first {
                // The first token comes from the prefill's logits; time decoding after it.
                timer = Instant::now();
                first = false;
            } else {
                tokens += 1;
            }
        }
        let stats = generation.stats().clone();
        drop(generation);
        best_prefill =
            best_prefill.max(stats.prefill_tokens as f64 / stats.prefill_time.as_secs_f64());
        best_decode = best_decode.max(tokens as f64 / timer.elapsed().as_secs_f64());
    }
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all".into());
    println!(
        "{}",
        serde_json::json!({
            "model": session.name,
            "parameters": session.parameter_count(),
            "device": gpt2_tui::runtime::device::device_name(&device),
            "dtype": session.weight_format(),
            "threads": threads,
            "prompt_tokens": args.prompt_tokens,
            "decode_tokens": args.decode_tokens,
            "top": args.top,
            "load_s": (load_s * 1000.0).round() / 1000.0,
            "prefill_tokens_per_s": (best_prefill * 10.0).round() / 10.0,
            "decode_tokens_per_s": (best_decode * 10.0).round() / 10.0,
            "weights_mb": weights_mb.round(),
            "peak_rss_mb": peak_rss_mb().map(f64::round),
            "load_peak_rss_mb": load_peak_rss_mb.map(f64::round),
        })
    );
    Ok(())
}
