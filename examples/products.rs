//! Speed of the prompt pass's matrix products alone, on GPT-2 small's four projection shapes:
//! f32 (the matmul crate), q8_0 (`kernels::q8`, which picks the prompt kernel for many rows)
//! and q4_0, q4_K and q6_K where this CPU has kernels for them, in multiply-adds per second, the best of --runs. Random weights; for comparing
//! kernels, not models.
//!
//! cargo run --release --example products -- [--rows 512] [--threads 2] [--runs 5]

use std::time::Instant;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use clap::Parser;
use gpt2_tui::kernels::{add_matmul, k_quants, q4_q5, q8};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 512)]
    rows: usize,
    #[arg(long)]
    threads: Option<usize>,
    #[arg(long, default_value_t = 5)]
    runs: usize,
}

/// The best time of `runs` calls, in seconds.
fn best_of(runs: usize, mut f: impl FnMut()) -> f64 {
    (0..runs.max(1))
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(n) = args.threads {
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    let m = args.rows;
    let mut report = serde_json::Map::new();
    // (name, inputs k, outputs n): c_attn, attention c_proj, c_fc, MLP c_proj.
    for (name, k, n) in [
        ("c_attn", 768, 2304),
        ("attn_proj", 768, 768),
        ("c_fc", 768, 3072),
        ("mlp_proj", 3072, 768),
    ] {
        let x = Tensor::randn(0f32, 1.0, (m, k), &Device::Cpu)?;
        let xs = x.flatten_all()?.to_vec1::<f32>()?;
        let w = Tensor::randn(0f32, 0.02, (n, k), &Device::Cpu)?;
        let dense = w.t()?.contiguous()?.flatten_all()?.to_vec1::<f32>()?; // (k, n)
        let quantized = QTensor::quantize(&w, GgmlDType::Q8_0)?;
        let blocks = q8::Q8Matrix::of(&quantized)?.expect("q8_0 on the CPU");
        let mut y = vec![0f32; m * n];
        let f32_s = best_of(args.runs, || {
            // SAFETY: xs is m x k, dense k x n, y m x n, all row-major.
            unsafe { add_matmul((m, n, k), y.as_mut_ptr(), n, &xs, dense.as_ptr(), (n, 1)) }
        });
        let q8_s = best_of(args.runs, || {
            q8::add_rows_times(&xs, blocks, &mut y).unwrap()
        });
        let gmacs = |s: f64| ((m * n * k) as f64 / s / 1e9 * 10.0).round() / 10.0;
        let mut row = serde_json::json!({
            "f32_gmac_per_s": gmacs(f32_s),
            "q8_0_gmac_per_s": gmacs(q8_s),
        });
        // The 4-bit and K formats, where this CPU has kernels of its own for them.
        for dtype in [GgmlDType::Q4_0, GgmlDType::Q4K, GgmlDType::Q6K] {
            let quantized = QTensor::quantize(&w, dtype)?;
            let mut own = true;
            let s = best_of(args.runs, || {
                own = q4_q5::add_rows_times_t(&xs, &quantized, &mut y).unwrap()
                    || k_quants::add_rows_times_t(&xs, &quantized, &mut y).unwrap();
            });
            if own {
                let key = format!("{}_gmac_per_s", format!("{dtype:?}").to_lowercase());
                row[key] = gmacs(s).into();
            }
        }
        report.insert(name.into(), row);
    }
    println!("{}", serde_json::Value::Object(report));
    Ok(())
}
