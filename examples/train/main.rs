//! Trains the bundled model: a small GPT-2 on the Shakespeare plays in `data/`.
//!
//! ```sh
//! cargo run --release --example train            # the bundled model's settings (see --help)
//! ```
//!
//! Steps: read `data/train/*.txt` and `data/heldout/*.txt` (held-out plays are never trained
//! on); train a byte-level BPE on the training text (or take GPT-2's tokenizer); tokenize into a
//! plain stream and a chat stream (speeches as `<|endoftext|>`-separated turns); train with
//! AdamW, warm-up and cosine decay, gradient clipping; evaluate on the held-out plays as it
//! goes; write the model folder (`config.json`, `model.safetensors`, `tokenizer.json`), a CSV
//! log and the loss plot. Everything random comes from `--seed`, so a rerun with the same
//! flags and thread count gives the same model.

mod data;
mod plot;
mod trainer;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use gpt2_tui::model::Gpt2Config;
use gpt2_tui::tokenizer::Tokenizer;
use gpt2_tui::weights::save::{save_folder, StorageDtype};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use data::Stream;
use plot::Point;
use trainer::{eval_windows, Hyper, Trainer};

#[derive(Debug, Parser)]
#[command(about = "Train the bundled GPT-2 on the Shakespeare plays in data/")]
struct Args {
    /// Folder with `train/` and `heldout/` subfolders of .txt files.
    #[arg(long, default_value = "data")]
    data: PathBuf,
    /// Model folder to write.
    #[arg(long, default_value = "assets/model")]
    out: PathBuf,
    /// `bpe:N` trains a byte-level BPE of N tokens on the training text; `gpt2:DIR` takes
    /// the tokenizer.json in DIR (GPT-2's own).
    #[arg(long, default_value = "bpe:4096")]
    tokenizer: String,
    #[arg(long, default_value_t = 4)]
    n_layer: usize,
    #[arg(long, default_value_t = 4)]
    n_head: usize,
    #[arg(long, default_value_t = 128)]
    n_embd: usize,
    /// Context window (n_positions) and training sequence length.
    #[arg(long, default_value_t = 128)]
    ctx: usize,
    /// Sequences per step.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    #[arg(long, default_value_t = 1200)]
    steps: usize,
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    #[arg(long, default_value_t = 0.1)]
    min_lr_frac: f64,
    #[arg(long, default_value_t = 100)]
    warmup: usize,
    #[arg(long, default_value_t = 0.1)]
    weight_decay: f64,
    #[arg(long, default_value_t = 1.0)]
    clip: f64,
    #[arg(long, default_value_t = 0.99)]
    beta2: f64,
    #[arg(long, default_value_t = 1337)]
    seed: u64,
    /// Fraction of training sequences drawn from the chat stream (the rest: plain text).
    #[arg(long, default_value_t = 0.25)]
    chat_frac: f64,
    /// Steps between evaluations on the held-out plays (0: only at the end).
    #[arg(long, default_value_t = 200)]
    eval_every: usize,
    /// Held-out windows per evaluation (evenly spread over the held-out text).
    #[arg(long, default_value_t = 48)]
    eval_windows: usize,
    /// Steps between training-loss log lines.
    #[arg(long, default_value_t = 50)]
    log_every: usize,
    /// Loss plot to write.
    #[arg(long, default_value = "assets/loss.png")]
    plot: PathBuf,
    /// CSV log to write.
    #[arg(long, default_value = "assets/train_log.csv")]
    log: PathBuf,
    /// Stop after this many minutes of CPU time (all threads), the learning-rate decay following
    /// the time used instead of the step: for equal-time comparisons, not reproducible.
    #[arg(long)]
    cpu_budget_min: Option<f64>,
    /// Store f32 weights instead of f16.
    #[arg(long)]
    f32: bool,
    /// Train and report only: write no model, log or plot.
    #[arg(long)]
    dry_run: bool,
}

fn main() -> anyhow::Result<()> {
    gpt2_tui::runtime::allocator::keep_all_freed_memory();
    let args = Args::parse();
    let started = Instant::now();
    let command_line = std::env::args().collect::<Vec<_>>().join(" ");
    println!("{command_line}");
    println!(
        "threads: {} (candle/rayon; set RAYON_NUM_THREADS to change)",
        candle_core::utils::get_num_threads()
    );

    let train_texts = data::read_dir(&args.data.join("train"))?;
    let heldout_texts = data::read_dir(&args.data.join("heldout"))?;
    for h in &heldout_texts {
        if train_texts.iter().any(|t| t.name == h.name) {
            anyhow::bail!("{} is both in train/ and heldout/", h.name);
        }
    }
    println!(
        "data: {} training texts ({} bytes), held out: {}",
        train_texts.len(),
        train_texts.iter().map(|t| t.body.len()).sum::<usize>(),
        heldout_texts
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );

    let t0 = Instant::now();
    let hf = build_tokenizer(&args.tokenizer, &train_texts)?;
    let tokenizer = Tokenizer::from_hf(hf, "trained tokenizer")?;
    let eos = tokenizer
        .eos_id()
        .context("the tokenizer has no <|endoftext|>")?;
    let encode = |s: &str| -> anyhow::Result<Vec<u32>> { Ok(tokenizer.encode(s)?) };
    let train_plain = data::plain_stream(&train_texts, &encode, eos)?;
    let train_chat = data::chat_stream(&train_texts, &encode, eos)?;
    let val_plain = data::plain_stream(&heldout_texts, &encode, eos)?;
    let val_chat = data::chat_stream(&heldout_texts, &encode, eos)?;
    println!(
        "tokenizer: {} tokens (eos {eos}), built and applied in {:.1} s; train: {} plain + {} chat tokens; held out: {} plain ({:.3} bytes/token) + {} chat",
        tokenizer.vocab_size(),
        t0.elapsed().as_secs_f64(),
        train_plain.tokens.len(),
        train_chat.tokens.len(),
        val_plain.tokens.len(),
        val_plain.bytes_per_token(),
        val_chat.tokens.len(),
    );

    let config = Gpt2Config {
        vocab_size: tokenizer.vocab_size(),
        n_positions: args.ctx,
        n_embd: args.n_embd,
        n_layer: args.n_layer,
        n_head: args.n_head,
        n_inner: None,
        bos_token_id: eos,
        eos_token_id: eos,
        ..Gpt2Config::gpt2_small()
    };
    let hyper = Hyper {
        lr: args.lr,
        min_lr_frac: args.min_lr_frac,
        warmup: args.warmup,
        steps: args.steps,
        weight_decay: args.weight_decay,
        clip: args.clip,
        beta2: args.beta2,
    };
    let mut trainer = Trainer::new(config.clone(), hyper, args.seed)?;
    println!(
        "model: n_layer {} n_head {} n_embd {} ctx {} vocab {}: {} parameters; {} steps of {}x{} tokens",
        config.n_layer,
        config.n_head,
        config.n_embd,
        config.n_positions,
        config.vocab_size,
        trainer.parameter_count(),
        args.steps,
        args.batch,
        args.ctx
    );

    let val_plain_windows = spread(eval_windows(&val_plain.tokens, args.ctx), args.eval_windows);
    let val_chat_windows = spread(
        eval_windows(&val_chat.tokens, args.ctx),
        args.eval_windows / 2,
    );
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed.wrapping_add(1));
    let mut log = Log::default();
    let mut interval = (0f64, 0usize);
    let train_started = Instant::now();
    let cpu_at_start = cpu_seconds();
    let mut steps_done = 0;
    for step in 0..args.steps {
        let windows: Vec<&[u32]> = (0..args.batch)
            .map(|_| {
                pick(
                    &train_plain,
                    &train_chat,
                    args.chat_frac,
                    args.ctx,
                    &mut rng,
                )
            })
            .collect();
        let (inputs, targets) = trainer.batch(&windows)?;
        let budget_used = args
            .cpu_budget_min
            .map(|m| (cpu_seconds() - cpu_at_start) / (m * 60.0));
        let lr = match budget_used {
            Some(fraction) => trainer.hyper.lr_at_progress(step, fraction),
            None => trainer.hyper.lr_at(step),
        };
        let stats = trainer.step(lr, &inputs, &targets)?;
        if !stats.loss.is_finite() {
            anyhow::bail!("the loss is {} at step {step}", stats.loss);
        }
        interval.0 += stats.loss as f64;
        interval.1 += 1;
        log.rows.push(format!(
            "{},{:.5},,,{:.6e},{:.4}",
            step + 1,
            stats.loss,
            stats.lr,
            stats.grad_norm
        ));
        let done = step + 1;
        let out_of_time = budget_used.is_some_and(|f| f >= 1.0);
        let last = done == args.steps || out_of_time;
        if done % args.log_every == 0 || last {
            let mean = interval.0 / interval.1 as f64;
            log.train.push(Point {
                step: done,
                value: mean,
            });
            interval = (0.0, 0);
            let per_step = train_started.elapsed().as_secs_f64() / done as f64;
            println!(
                "step {done:5} | loss {mean:.4} | lr {:.2e} | grad norm {:.3} | {:.2} s/step (cpu {:.2}) | {:.0} tok/s | {:.1} min",
                stats.lr,
                stats.grad_norm,
                per_step,
                (cpu_seconds() - cpu_at_start) / done as f64,
                (args.batch * args.ctx) as f64 / per_step,
                started.elapsed().as_secs_f64() / 60.0
            );
        }
        if (args.eval_every > 0 && done % args.eval_every == 0) || last {
            let t = Instant::now();
            let plain = trainer.eval(&val_plain_windows, args.batch)?;
            let chat = trainer.eval(&val_chat_windows, args.batch)?;
            let bpb = plain / std::f64::consts::LN_2 / val_plain.bytes_per_token();
            log.val_plain.push(Point {
                step: done,
                value: plain,
            });
            log.val_chat.push(Point {
                step: done,
                value: chat,
            });
            log.rows.push(format!("{done},,{plain:.5},{chat:.5},,"));
            println!(
                "eval {done:5} | held-out plain {plain:.4} ({bpb:.3} bits/byte) | held-out chat {chat:.4} | {:.1} s",
                t.elapsed().as_secs_f64()
            );
            std::io::stdout().flush()?;
        }
        if last {
            steps_done = done;
            break;
        }
    }
    let train_time = train_started.elapsed().as_secs_f64();
    let last_train = log.train.last().map_or(f64::NAN, |p| p.value);
    let last_val = log.val_plain.last().map_or(f64::NAN, |p| p.value);
    let last_chat = log.val_chat.last().map_or(f64::NAN, |p| p.value);
    println!(
        "done: {steps_done} steps in {:.1} min ({:.1} min of CPU time; {:.1} min in all); final train loss {last_train:.4}, held-out plain {last_val:.4} ({:.3} bits/byte), held-out chat {last_chat:.4}",
        train_time / 60.0,
        (cpu_seconds() - cpu_at_start) / 60.0,
        started.elapsed().as_secs_f64() / 60.0,
        last_val / std::f64::consts::LN_2 / val_plain.bytes_per_token(),
    );
    if args.dry_run {
        return Ok(());
    }

    let storage = if args.f32 {
        StorageDtype::F32
    } else {
        StorageDtype::F16
    };
    save_folder(
        &args.out,
        &config,
        &trainer.tensors(),
        tokenizer.hf(),
        storage,
    )?;
    println!(
        "wrote {} ({} bytes)",
        args.out.display(),
        folder_size(&args.out)?
    );
    log.write_csv(&args.log)?;
    let title = format!(
        "GPT-2 {}L/{}H/{}d, vocab {}: {} steps, {:.0} min on {} threads",
        config.n_layer,
        config.n_head,
        config.n_embd,
        config.vocab_size,
        steps_done,
        train_time / 60.0,
        candle_core::utils::get_num_threads()
    );
    plot::loss_png(
        &args.plot,
        &title,
        &log.train,
        &log.val_plain,
        &log.val_chat,
    )?;
    println!("wrote {} and {}", args.log.display(), args.plot.display());
    Ok(())
}

/// CPU time of this process so far, all threads, user and system, in seconds.
fn cpu_seconds() -> f64 {
    #[cfg(unix)]
    {
        // SAFETY: getrusage fills the struct it is given.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } == 0 {
            let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
            return secs(usage.ru_utime) + secs(usage.ru_stime);
        }
    }
    f64::NAN
}

/// A training window: from the chat stream with probability `chat_frac`, else plain text.
fn pick<'a>(
    plain: &'a Stream,
    chat: &'a Stream,
    chat_frac: f64,
    len: usize,
    rng: &mut ChaCha8Rng,
) -> &'a [u32] {
    let from_chat = rng.random::<f64>() < chat_frac && chat.tokens.len() > len + 1;
    if from_chat {
        chat.window(len, rng)
    } else {
        plain.window(len, rng)
    }
}

/// At most `max` of `items`, evenly spread.
fn spread<T: Copy>(items: Vec<T>, max: usize) -> Vec<T> {
    if items.len() <= max || max == 0 {
        return items;
    }
    (0..max).map(|i| items[i * items.len() / max]).collect()
}

/// Builds the tokenizer named by `spec` (`bpe:N` or `gpt2:DIR`).
fn build_tokenizer(spec: &str, texts: &[data::Text]) -> anyhow::Result<tokenizers::Tokenizer> {
    if let Some(dir) = spec.strip_prefix("gpt2:") {
        let path = Path::new(dir).join("tokenizer.json");
        return tokenizers::Tokenizer::from_file(&path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()));
    }
    let size: usize = spec
        .strip_prefix("bpe:")
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("--tokenizer {spec}: expected bpe:N or gpt2:DIR"))?;
    data::train_bpe(size, texts.iter().map(|t| t.body.as_str()))
}

#[derive(Default)]
struct Log {
    train: Vec<Point>,
    val_plain: Vec<Point>,
    val_chat: Vec<Point>,
    /// step, train_loss, val_plain_loss, val_chat_loss, lr, grad_norm
    rows: Vec<String>,
}

impl Log {
    fn write_csv(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut text = String::from("step,train_loss,val_plain_loss,val_chat_loss,lr,grad_norm\n");
        for row in &self.rows {
            text.push_str(row);
            text.push('\n');
        }
        std::fs::write(path, text).with_context(|| path.display().to_string())
    }
}

fn folder_size(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        total += entry?.metadata()?.len();
    }
    Ok(total)
}
