//! The training program's parts on a tiny config: the loss goes down, runs repeat exactly, and a
//! saved folder loads back through the normal loader with the same logits.
//!
//! The modules are the example's own files (`examples/train/`), compiled into this test.

#[allow(dead_code)]
#[path = "../examples/train/data.rs"]
mod data;
#[allow(dead_code)]
#[path = "../examples/train/trainer.rs"]
mod trainer;

use candle_core::{DType, Device, Tensor};
use gpt2_tui::model::{Gpt2Config, Mode};
use gpt2_tui::tokenizer::Tokenizer;
use gpt2_tui::weights::save::{save_folder, StorageDtype};
use gpt2_tui::weights::{loader, ModelFiles};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use trainer::{Hyper, Trainer};

/// The opening of the sonnets (training data), as a small corpus.
fn corpus() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/train/sonnets_gut.txt");
    let text = std::fs::read_to_string(path).expect("data/train/sonnets_gut.txt");
    text[..12_000].to_string()
}

struct Tiny {
    hf: tokenizers::Tokenizer,
    stream: data::Stream,
    config: Gpt2Config,
}

fn tiny() -> Tiny {
    let text = corpus();
    let hf = data::train_bpe(300, [text.as_str()].into_iter()).expect("BPE trains");
    let tokenizer = Tokenizer::from_hf(hf.clone(), "tiny").unwrap();
    let eos = tokenizer.eos_id().expect("<|endoftext|> is a token");
    let texts = [data::Text {
        name: "sonnets".into(),
        body: text,
    }];
    let encode = |s: &str| -> anyhow::Result<Vec<u32>> { Ok(tokenizer.encode(s)?) };
    let stream = data::plain_stream(&texts, &encode, eos).unwrap();
    let config = Gpt2Config {
        vocab_size: tokenizer.vocab_size(),
        n_positions: 32,
        n_embd: 32,
        n_layer: 2,
        n_head: 2,
        bos_token_id: eos,
        eos_token_id: eos,
        ..Gpt2Config::gpt2_small()
    };
    Tiny { hf, stream, config }
}

fn hyper(steps: usize) -> Hyper {
    Hyper {
        lr: 3e-3,
        min_lr_frac: 0.1,
        warmup: 5,
        steps,
        weight_decay: 0.1,
        clip: 1.0,
        beta2: 0.99,
    }
}

/// Trains `steps` steps on random windows; returns the losses.
fn train(t: &Tiny, trainer: &mut Trainer, steps: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..steps)
        .map(|step| {
            let windows: Vec<&[u32]> = (0..8).map(|_| t.stream.window(32, &mut rng)).collect();
            let (inputs, targets) = trainer.batch(&windows).unwrap();
            let lr = trainer.hyper.lr_at(step);
            trainer.step(lr, &inputs, &targets).unwrap().loss
        })
        .collect()
}

#[test]
fn a_few_steps_lower_the_loss() {
    let t = tiny();
    let steps = 60;
    let mut trainer = Trainer::new(t.config.clone(), hyper(steps), 7).unwrap();
    let all = trainer::eval_windows(&t.stream.tokens, 32);
    let windows = &all[..16];
    let before = trainer.eval(windows, 8).unwrap();
    let losses = train(&t, &mut trainer, steps, 8);
    let after = trainer.eval(windows, 8).unwrap();
    // A uniform guess over 300 tokens costs ln 300 = 5.7 nats.
    assert!(
        (before - (t.config.vocab_size as f64).ln()).abs() < 0.3,
        "{before}"
    );
    assert!(
        after < before - 1.0,
        "loss {before} -> {after}; steps: {losses:?}"
    );
    assert!(losses.iter().all(|l| l.is_finite()));
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let t = tiny();
    let run = || {
        let mut trainer = Trainer::new(t.config.clone(), hyper(6), 11).unwrap();
        train(&t, &mut trainer, 6, 12)
    };
    assert_eq!(run(), run());
}

#[test]
fn learning_rate_warms_up_then_decays_to_the_floor() {
    let h = hyper(105);
    assert!((h.lr_at(0) - 3e-3 / 5.0).abs() < 1e-12);
    assert!((h.lr_at(4) - 3e-3).abs() < 1e-12);
    assert!((h.lr_at(5) - 3e-3).abs() < 1e-12);
    assert!((h.lr_at(55) - 0.55 * 3e-3).abs() < 1e-9, "{}", h.lr_at(55));
    assert!((h.lr_at(105) - 3e-4).abs() < 1e-12);
    assert!((5..105).all(|s| h.lr_at(s + 1) <= h.lr_at(s)));
}

/// Largest absolute difference between two tensors.
fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap()
}

#[test]
fn saved_folder_loads_back_with_the_same_logits() {
    let t = tiny();
    let mut trainer = Trainer::new(t.config.clone(), hyper(10), 3).unwrap();
    train(&t, &mut trainer, 10, 4);
    let ids = Tensor::new(&t.stream.tokens[..2 * 32], &Device::Cpu)
        .unwrap()
        .reshape((2, 32))
        .unwrap();
    let expected = trainer.model.forward_all(&ids, Mode::Inference).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let f32_dir = dir.path().join("f32");
    save_folder(
        &f32_dir,
        &t.config,
        &trainer.tensors(),
        &t.hf,
        StorageDtype::F32,
    )
    .unwrap();
    let loaded = loader::load(
        &ModelFiles::from_folder(&f32_dir).unwrap(),
        &Device::Cpu,
        DType::F32,
    )
    .unwrap();
    assert_eq!(loaded.model.config(), &t.config);
    assert_eq!(loaded.parameter_count, trainer.parameter_count());
    assert_eq!(loaded.tokenizer.vocab_size(), t.config.vocab_size);
    let got = loaded.model.forward_all(&ids, Mode::Inference).unwrap();
    assert_eq!(max_diff(&got, &expected), 0.0, "f32 storage is exact");

    // f16 storage (what the bundled model uses): close, and the loader converts to f32.
    let f16_dir = dir.path().join("f16");
    save_folder(
        &f16_dir,
        &t.config,
        &trainer.tensors(),
        &t.hf,
        StorageDtype::F16,
    )
    .unwrap();
    let st =
        candle_core::safetensors::load(f16_dir.join("model.safetensors"), &Device::Cpu).unwrap();
    assert!(st.values().all(|t| t.dtype() == DType::F16));
    assert!(!st.contains_key("lm_head.weight"), "the head is tied");
    let loaded = loader::load(
        &ModelFiles::from_folder(&f16_dir).unwrap(),
        &Device::Cpu,
        DType::F32,
    )
    .unwrap();
    let got = loaded.model.forward_all(&ids, Mode::Inference).unwrap();
    let diff = max_diff(&got, &expected);
    assert!(diff < 0.02, "f16 round trip moved a logit by {diff}");

    // The tokenizer saved with the model is the one trained.
    let text = "Shall I compare thee to a summer's day?\n";
    assert_eq!(
        loaded.tokenizer.encode(text).unwrap(),
        t.hf.encode(text, false).unwrap().get_ids()
    );
    assert_eq!(
        loaded
            .tokenizer
            .decode(&loaded.tokenizer.encode(text).unwrap()),
        text
    );
}

#[test]
fn config_json_is_a_transformers_gpt2_config() {
    let t = tiny();
    let trainer = Trainer::new(t.config.clone(), hyper(1), 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    save_folder(
        dir.path(),
        &t.config,
        &trainer.tensors(),
        &t.hf,
        StorageDtype::F16,
    )
    .unwrap();
    let text = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["model_type"], "gpt2");
    assert_eq!(value["architectures"][0], "GPT2LMHeadModel");
    assert_eq!(value["activation_function"], "gelu_new");
    assert_eq!(value["torch_dtype"], "float16");
    assert_eq!(value["n_ctx"], 32);
    assert_eq!(
        value["eos_token_id"],
        t.hf.token_to_id("<|endoftext|>").unwrap()
    );
}
