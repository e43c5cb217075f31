//! The 8-bit weight path (q8_0) stays close to f32.

use candle_core::{DType, Device};
use gpt2_tui::model::{Gpt2, Gpt2Config, KvCache};

fn config() -> Gpt2Config {
    Gpt2Config {
        // More than two of the 2048-row slices the output head is quantized in.
        vocab_size: 4200,
        n_positions: 64,
        n_embd: 64,
        n_layer: 2,
        n_head: 4,
        ..Gpt2Config::gpt2_small()
    }
}

/// A model with fresh GPT-2-initialised weights, detached from training.
fn fresh_model(config: &Gpt2Config) -> Gpt2 {
    Gpt2::initialised(config).unwrap()
}

#[test]
fn q8_0_logits_stay_close_to_f32() {
    let dense = fresh_model(&config());
    let mut quantized = dense.clone();
    assert_eq!(
        quantized.quantize_q8_0().unwrap(),
        0,
        "every matrix has a width divisible by 32"
    );
    assert!(quantized.is_quantized());
    let prompt: Vec<u32> = (0..40).map(|i| (i * 37 % 300) as u32).collect();
    let run = |model: &Gpt2| {
        let mut cache = KvCache::new(2, 64);
        let mut out = vec![model
            .forward(&prompt, &mut cache)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()];
        for t in 0..5u32 {
            out.push(
                model
                    .forward(&[t * 11], &mut cache)
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap(),
            );
        }
        out
    };
    for (d, q) in run(&dense).iter().zip(run(&quantized)) {
        let scale = d.iter().fold(0f32, |m, x| m.max(x.abs()));
        let worst = d
            .iter()
            .zip(&q)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            worst < 0.02 * scale,
            "q8_0 logits off by {worst} (scale {scale})"
        );
    }
}

/// The loader quantizes each projection as it reads it (so the f32 copies never all sit in
/// memory); the result must be the very model that quantizing after a full load gives, from a
/// folder and from the bytes embedded in the binary alike.
#[test]
fn quantizing_while_reading_equals_quantizing_after_loading() {
    use gpt2_tui::weights::{bundled, loader, ModelFiles};
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/model");
    for files in [
        ModelFiles::from_folder(&folder).unwrap(),
        bundled::files().unwrap(),
    ] {
        let mut after = loader::load(&files, &Device::Cpu, DType::F32).unwrap();
        assert_eq!(after.model.quantize_q8_0().unwrap(), 0);
        let (while_reading, skipped) = loader::load_q8_0(&files, &Device::Cpu).unwrap();
        assert_eq!(skipped, 0);
        assert!(while_reading.model.is_quantized());
        assert_eq!(while_reading.parameter_count, after.parameter_count);
        let prompt: Vec<u32> = (0..30).map(|i| (i * 131 % 4000) as u32).collect();
        let run = |model: &Gpt2| {
            let mut cache = KvCache::new(model.config().n_layer, 64);
            let mut logits = vec![model.forward(&prompt, &mut cache).unwrap()];
            logits.push(model.forward(&[17], &mut cache).unwrap());
            logits
                .into_iter()
                .map(|t| t.to_vec1::<f32>().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(&while_reading.model), run(&after.model));
    }
}

/// The 8-bit model takes long prompts in slices of 128 tokens; the logits after a 300-token
/// prompt must be those of feeding the same tokens one at a time.
#[test]
fn a_long_prompt_in_slices_equals_feeding_it_token_by_token() {
    let config = Gpt2Config {
        n_positions: 320,
        ..config()
    };
    let mut model = fresh_model(&config);
    model.quantize_q8_0().unwrap();
    let prompt: Vec<u32> = (0..300).map(|i| (i * 53 % 300) as u32).collect();
    let mut cache = KvCache::new(config.n_layer, config.n_positions);
    let sliced = model.forward(&prompt, &mut cache).unwrap();
    assert_eq!(cache.tokens(), prompt.as_slice());
    let mut cache = KvCache::new(config.n_layer, config.n_positions);
    let mut stepped = None;
    for &id in &prompt {
        stepped = Some(model.forward(&[id], &mut cache).unwrap());
    }
    let (sliced, stepped) = (
        sliced.to_vec1::<f32>().unwrap(),
        stepped.unwrap().to_vec1::<f32>().unwrap(),
    );
    let differ =
        |a: &[f32], b: &[f32]| a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    // The two orders round different (equal up to float error) activations to 8 bits, so a
    // value on a rounding boundary may land one step apart: allow 1% of the logits' scale.
    let scale = stepped.iter().fold(0f32, |m, x| m.max(x.abs()));
    let worst = differ(&sliced, &stepped);
    assert!(
        worst < 0.01 * scale,
        "sliced and stepped logits differ by {worst} (scale {scale})"
    );
    // The check can see a slice that lost its context: the last slice alone is far off.
    let mut cache = KvCache::new(config.n_layer, config.n_positions);
    let alone = model.forward(&prompt[256..], &mut cache).unwrap();
    let lost = differ(&alone.to_vec1::<f32>().unwrap(), &stepped);
    assert!(
        lost > 0.05 * scale,
        "without its context: {lost} (scale {scale})"
    );
}

/// 8-bit weights must barely move the bundled model's perplexity on a held-out play: q8_0
/// keeps one scale per 32 weights, so each weight is off by at most 1/254 of its block's
/// largest, and those errors mostly cancel over a dot product of hundreds of terms.
#[test]
fn q8_0_keeps_the_bundled_models_heldout_perplexity() {
    use gpt2_tui::generate::session::Session;
    use gpt2_tui::weights::{bundled, loader};
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/heldout/macbeth_gut.txt"
    ))
    .unwrap();
    let excerpt = &text[..text.floor_char_boundary(10_000)];
    let files = bundled::files().unwrap();
    let f32_session = Session::new(loader::load(&files, &Device::Cpu, DType::F32).unwrap());
    let q8_session = Session::new(loader::load_q8_0(&files, &Device::Cpu).unwrap().0);
    let dense = gpt2_tui::generate::perplexity::score(&f32_session, excerpt, None).unwrap();
    let quantized = gpt2_tui::generate::perplexity::score(&q8_session, excerpt, None).unwrap();
    let change = (quantized.perplexity / dense.perplexity - 1.0).abs();
    assert!(
        change < 0.005,
        "perplexity {} in f32, {} in q8_0 ({:.3}% apart)",
        dense.perplexity,
        quantized.perplexity,
        change * 100.0
    );
}

/// The portable loops (forced by `GPT2_TUI_PORTABLE_KERNELS=1`, as on a CPU without AVX2) and
/// the AVX2 kernels (`GPT2_TUI_KERNELS=avx2`, as on a CPU without AVX-512 VNNI) give the
/// fastest kernels' figures: the 8-bit prompt kernel, the 8-bit and 4-bit dot products of
/// decoding and the f32 vector kernels, on the real binary, for a text long enough for the
/// prompt kernel.
#[test]
fn the_portable_kernels_give_the_simd_kernels_perplexity() {
    let text = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ppl.txt");
    let perplexity = |dtype: &str, level: Option<(&str, &str)>| -> f64 {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_gpt2-tui"));
        command.args(["perplexity", "--format", "json", "--dtype", dtype, text]);
        command.env_remove("GPT2_TUI_PORTABLE_KERNELS");
        command.env_remove("GPT2_TUI_KERNELS");
        if let Some((name, value)) = level {
            command.env(name, value);
        }
        let out = command.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        json["perplexity"].as_f64().unwrap()
    };
    for dtype in ["f32", "q8_0", "q4_0"] {
        let fastest = perplexity(dtype, None);
        // The bounds: the 8-bit kernels' integer sums are exact, but each adds its blocks' f32
        // products in its own order, and the next layer rounds its inputs to 8 bits again, so
        // a last-bit difference sometimes lands on the other side of a rounding step (1.2e-4
        // apart here between VNNI and AVX2). Without AVX2, q8_0 prompts multiply f32 inputs by
        // the dequantized weights, not 8-bit ones (1.1e-3 apart here).
        let avx2 = perplexity(dtype, Some(("GPT2_TUI_KERNELS", "avx2")));
        let mut others = vec![("AVX2", avx2, 3e-4)];
        // q4_0 prompts without AVX2 multiply f32 inputs by the widened weights: 0.15% apart
        // on this text, so only the integer kernels are compared there.
        if dtype != "q4_0" {
            let portable = perplexity(dtype, Some(("GPT2_TUI_PORTABLE_KERNELS", "1")));
            if dtype == "q8_0" && gpt2_tui::kernels::q8_prompt::available() {
                // The switch took: without AVX2 a prompt multiplies dequantized weights in
                // f32, with it 8-bit inputs, which cannot give the very same sum.
                assert_ne!(
                    fastest, portable,
                    "GPT2_TUI_PORTABLE_KERNELS changed nothing"
                );
            }
            let bound = if dtype == "f32" { 1e-6 } else { 2e-3 };
            others.push(("portable", portable, bound));
        }
        for (name, other, bound) in others {
            assert!(
                (fastest / other - 1.0).abs() < bound,
                "{dtype}: {fastest} with the fastest kernels, {other} with the {name} ones"
            );
        }
    }
}

/// A quantized tied head's blocks serve the token lookups too: the 8-bit model keeps no f32
/// copy of the token embeddings (the largest matrix: 154 MB of GPT-2 124M's 500) and holds
/// them as llama.cpp stores them, `wte.weight` in blocks and no `lm_head.weight`. (That the
/// rows looked up from the blocks are right is checked in `tests/gguf.rs`, against the same
/// model with every weight dequantized to f32.)
#[test]
fn a_quantized_tied_head_serves_the_token_lookups() {
    use gpt2_tui::model::gpt2::StoredWeight;
    let mut model = fresh_model(&config());
    assert!(model.has_tied_head());
    model.quantize_q8_0().unwrap();
    assert!(model.has_tied_head(), "still tied once quantized");
    let stored = model.stored_weights().unwrap();
    let wte = stored.iter().find(|(name, _)| name == "wte.weight");
    assert!(
        matches!(wte, Some((_, StoredWeight::Quantized(q))) if q.shape().dims() == [4200, 64]),
        "wte.weight is held as the head's blocks"
    );
    assert!(stored.iter().all(|(name, _)| name != "lm_head.weight"));
    let dense: usize = stored
        .iter()
        .filter_map(|(_, w)| match w {
            StoredWeight::Dense(t) => Some(t.elem_count()),
            StoredWeight::Quantized(_) => None,
        })
        .sum();
    assert!(
        dense < 4200 * 64,
        "{dense} dense values: no f32 copy of the 4200 x 64 embeddings"
    );
}
