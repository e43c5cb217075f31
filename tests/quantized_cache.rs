//! The quantized-model cache: the first 8- or 4-bit load writes a GGUF file, the next reads it
//! without quantizing and runs the very same model; a stale, truncated or damaged file is
//! rebuilt, and a cache that cannot be written only costs a warning.

mod common;

use std::path::{Path, PathBuf};

use candle_core::Device;
use gpt2_tui::model::q8::QuantType;
use gpt2_tui::model::{Gpt2, KvCache};
use gpt2_tui::weights::loader::{self, ModelFiles};
use gpt2_tui::weights::quantized_cache::{self, CacheUse, QuantizedLoad};
use gpt2_tui::weights::LoadedModel;

/// The model folder inside the repository (the bundled model's files): 128 wide, so q8_0
/// blocks every matrix and q4_k (blocks of 256) only the MLP's output projections.
fn source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/model")
}

/// A copy of the model folder that a test may change.
fn copied_source() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("model");
    std::fs::create_dir(&folder).unwrap();
    for name in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(source().join(name), folder.join(name)).unwrap();
    }
    (dir, folder)
}

fn load(folder: &Path, kind: QuantType, cache: &Path) -> (LoadedModel, QuantizedLoad) {
    let files = ModelFiles::from_folder(folder).unwrap();
    let config = loader::read_config(&files).unwrap();
    quantized_cache::load(&files, &config, &Device::Cpu, kind, &[cache.to_path_buf()]).unwrap()
}

/// The logits after a 40-token prompt (the prompt pass) and after each of 4 single tokens
/// (the decode step).
fn logits(model: &Gpt2) -> Vec<Vec<f32>> {
    let prompt: Vec<u32> = (0..40).map(|i| (i * 97 % 4000) as u32).collect();
    let mut cache = KvCache::new(model.config().n_layer, model.config().n_positions);
    let mut out = vec![model.forward(&prompt, &mut cache).unwrap()];
    for id in [5u32, 17, 300, 2] {
        out.push(model.forward(&[id], &mut cache).unwrap());
    }
    out.into_iter().map(|t| t.to_vec1().unwrap()).collect()
}

fn greedy_text(loaded: LoadedModel) -> String {
    let mut session = gpt2_tui::generate::session::Session::new(loaded);
    let prompt = session.tokenizer().encode("To be, or not").unwrap();
    let mut generation = session
        .generate(&prompt, Default::default(), Some(1))
        .unwrap();
    let mut text = String::new();
    loop {
        match generation.step(&common::greedy(12)).unwrap() {
            gpt2_tui::generate::session::Step::Token(t) => text += &t.text,
            gpt2_tui::generate::session::Step::Done { text: rest, .. } => return text + &rest,
        }
    }
}

fn written(report: &QuantizedLoad) -> PathBuf {
    match &report.cache {
        CacheUse::Written(path) => path.clone(),
        other => panic!(
            "expected a written cache file, got {other:?} ({:?})",
            report.warnings
        ),
    }
}

/// Loads once (writing the cache), then again: the second load read the file, quantized
/// nothing, and its model gives the first one's logits and greedy text.
fn first_and_second(folder: &Path, kind: QuantType, cache: &Path) -> (PathBuf, LoadedModel) {
    let (first, report) = load(folder, kind, cache);
    let path = written(&report);
    assert!(report.quantized_matrices > 0 && report.warnings.is_empty());
    let (second, again) = load(folder, kind, cache);
    assert_eq!(
        again.cache,
        CacheUse::Read(path.clone()),
        "{:?}",
        again.warnings
    );
    assert_eq!(
        again.quantized_matrices, 0,
        "a cached model is not quantized again"
    );
    assert_eq!(again.kept_f32, report.kept_f32);
    assert!(again.warnings.is_empty(), "{:?}", again.warnings);
    assert_eq!(second.parameter_count, first.parameter_count);
    assert_eq!(second.model.has_tied_head(), first.model.has_tied_head());
    assert_eq!(logits(&second.model), logits(&first.model));
    (path, first)
}

#[test]
fn the_second_start_reads_the_cache_and_runs_the_same_model() {
    let cache = tempfile::tempdir().unwrap();
    let (path, first) = first_and_second(&source(), QuantType::Q8_0, cache.path());
    assert!(path.starts_with(cache.path()) && path.to_string_lossy().ends_with(".q8_0.gguf"));
    let (second, _) = load(&source(), QuantType::Q8_0, cache.path());
    assert_eq!(greedy_text(second), greedy_text(first));
}

/// q4_k blocks 256 values: the 128-wide matrices stay f32 in the file, and come back so.
#[test]
fn a_type_that_keeps_some_matrices_f32_comes_back_the_same() {
    let cache = tempfile::tempdir().unwrap();
    first_and_second(&source(), QuantType::Q4K, cache.path());
    let (_, report) = load(&source(), QuantType::Q4K, cache.path());
    assert!(report.kept_f32 > 0, "{report:?}");
    // Each type has a file of its own.
    let (_, q8) = load(&source(), QuantType::Q8_0, cache.path());
    assert!(matches!(q8.cache, CacheUse::Written(_)), "{q8:?}");
}

/// A checkpoint with an output head of its own (as DialoGPT's): the head is cached as its own
/// tensor and read back as such, not confused with the token embeddings.
#[test]
fn an_untied_head_is_cached_and_read_back_as_its_own() {
    let (dir, folder) = copied_source();
    let weights = folder.join("model.safetensors");
    let mut tensors = candle_core::safetensors::load(&weights, &Device::Cpu).unwrap();
    let wte = tensors
        .iter()
        .find(|(name, _)| name.ends_with("wte.weight"))
        .map(|(_, t)| t.clone())
        .unwrap();
    // Another matrix of the same shape: the embeddings' rows in reverse order, halved.
    let rows = wte.dim(0).unwrap() as u32;
    let reversed: Vec<u32> = (0..rows).rev().collect();
    let reversed = candle_core::Tensor::new(reversed.as_slice(), &Device::Cpu).unwrap();
    let head = (wte.index_select(&reversed, 0).unwrap() * 0.5).unwrap();
    tensors.insert("lm_head.weight".into(), head);
    candle_core::safetensors::save(&tensors, &weights).unwrap();

    let cache = tempfile::tempdir().unwrap();
    let (_, first) = first_and_second(&folder, QuantType::Q8_0, cache.path());
    assert!(!first.model.has_tied_head());
    // The head is in use: the tied model's logits differ.
    let (tied, _) = load(&source(), QuantType::Q8_0, cache.path());
    assert_ne!(logits(&tied.model), logits(&first.model));
    drop(dir);
}

/// Damages the cache file with `damage`, then loads: the damage is found (the warning names
/// `reason`), the model is quantized again and the file replaced, and the next load reads it.
fn damaged_is_rebuilt(damage: impl FnOnce(&Path), reason: &str) {
    let cache = tempfile::tempdir().unwrap();
    let (first, report) = load(&source(), QuantType::Q8_0, cache.path());
    let path = written(&report);
    damage(&path);
    let (rebuilt, report) = load(&source(), QuantType::Q8_0, cache.path());
    assert_eq!(report.cache, CacheUse::Written(path.clone()));
    assert!(report.quantized_matrices > 0);
    assert!(
        report.warnings.len() == 1 && report.warnings[0].contains(reason),
        "{reason}: {:?}",
        report.warnings
    );
    assert_eq!(logits(&rebuilt.model), logits(&first.model));
    let (again, report) = load(&source(), QuantType::Q8_0, cache.path());
    assert_eq!(report.cache, CacheUse::Read(path));
    assert_eq!(logits(&again.model), logits(&first.model));
}

#[test]
fn a_truncated_file_is_rebuilt() {
    damaged_is_rebuilt(
        |path| {
            let len = std::fs::metadata(path).unwrap().len();
            let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
            file.set_len(len - 1000).unwrap();
        },
        // Found by the size, before any tensor is read.
        "its tensors end at",
    );
}

#[test]
fn a_corrupt_header_is_rebuilt() {
    damaged_is_rebuilt(
        |path| {
            let mut bytes = std::fs::read(path).unwrap();
            // The length of the first metadata key, made absurd.
            bytes[24..32].copy_from_slice(&u64::MAX.to_le_bytes());
            std::fs::write(path, bytes).unwrap();
        },
        "header",
    );
}

#[test]
fn damaged_tensor_data_is_rebuilt() {
    damaged_is_rebuilt(
        |path| {
            let mut bytes = std::fs::read(path).unwrap();
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0x40;
            std::fs::write(path, bytes).unwrap();
        },
        "checksum",
    );
}

#[test]
fn a_file_of_other_metadata_is_not_trusted() {
    damaged_is_rebuilt(
        |path| {
            let mut bytes = std::fs::read(path).unwrap();
            let at = find(&bytes, b"q8_0");
            bytes[at..at + 4].copy_from_slice(b"q4_0");
            std::fs::write(path, bytes).unwrap();
        },
        "holds q4_0",
    );
}

fn find(bytes: &[u8], needle: &[u8]) -> usize {
    bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle in the file")
}

/// New weights in the same folder: the cache file is stale, is rebuilt, and the model is the
/// new checkpoint's, not the old one's.
#[test]
fn a_changed_checkpoint_is_not_served_from_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    let (_dir, folder) = copied_source();
    let (old, report) = load(&folder, QuantType::Q8_0, cache.path());
    let path = written(&report);
    // Other weights, same size: every value of the data section scaled.
    let weights = folder.join("model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let header = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    for value in bytes[header..].chunks_exact_mut(2) {
        let half = half::f16::from_le_bytes([value[0], value[1]]);
        value.copy_from_slice(&half::f16::from_f32(half.to_f32() * 0.9).to_le_bytes());
    }
    std::fs::write(&weights, &bytes).unwrap();
    let (new, report) = load(&folder, QuantType::Q8_0, cache.path());
    assert_eq!(report.cache, CacheUse::Written(path));
    assert!(
        report.warnings[0].contains("stale"),
        "{:?}",
        report.warnings
    );
    let files = ModelFiles::from_folder(&folder).unwrap();
    let (fresh, _) = loader::load_quantized(&files, &Device::Cpu, QuantType::Q8_0).unwrap();
    assert_eq!(logits(&new.model), logits(&fresh.model));
    assert_ne!(logits(&new.model), logits(&old.model));
}

/// A cache folder that cannot be made (its parent is a file; the tests run as root, whom
/// permissions do not stop): the model is quantized in memory, with one warning.
#[test]
fn an_unwritable_cache_only_warns() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, b"not a folder").unwrap();
    let cache = blocker.join("cache");
    let (loaded, report) = load(&source(), QuantType::Q8_0, &cache);
    assert!(matches!(report.cache, CacheUse::NotCached(_)), "{report:?}");
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(report.warnings[0].contains("cannot write"));
    let files = ModelFiles::from_folder(&source()).unwrap();
    let (fresh, _) = loader::load_quantized(&files, &Device::Cpu, QuantType::Q8_0).unwrap();
    assert_eq!(logits(&loaded.model), logits(&fresh.model));
}

/// The cache file is a GPT-2 GGUF file in llama.cpp's layout: the GGUF reader, which reads
/// llama.cpp's files, loads it as a model of its own with the same logits.
#[test]
fn the_cache_file_is_a_gguf_model_of_its_own() {
    let cache = tempfile::tempdir().unwrap();
    let (cached, report) = load(&source(), QuantType::Q8_0, cache.path());
    let path = written(&report);
    let as_gguf = loader::load(
        &ModelFiles::from_gguf(&path).unwrap(),
        &Device::Cpu,
        candle_core::DType::F32,
    )
    .unwrap();
    assert_eq!(logits(&as_gguf.model), logits(&cached.model));
    let text = "Wherefore art thou";
    assert_eq!(
        as_gguf.tokenizer.encode(text).unwrap(),
        cached.tokenizer.encode(text).unwrap()
    );
}

/// The binary: the first start says it quantized and cached, the second that it read the
/// cache, with the same text on stdout; `--no-cache` neither reads nor writes; `models` lists
/// the file.
#[test]
fn the_binary_says_where_the_model_came_from_and_lists_the_file() {
    let cache = tempfile::tempdir().unwrap();
    let folder = source();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "--model",
            folder.to_str().unwrap(),
            "--dtype",
            "q8_0",
            "-n",
            "8",
            "--temperature",
            "0",
            "-p",
            "To be",
        ];
        args.extend_from_slice(extra);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_gpt2-tui"))
            .args(&args)
            .env("GPT2_TUI_CACHE_DIR", cache.path())
            .env("XDG_CONFIG_HOME", cache.path().join("no-config"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (off, stderr) = run(&["--no-cache"]);
    assert!(!stderr.contains("cache"), "{stderr}");
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 0);
    let (first, stderr) = run(&[]);
    assert!(stderr.contains("quantized to q8_0, cached at"), "{stderr}");
    let (second, stderr) = run(&["--stats"]);
    assert!(stderr.contains("loaded cached q8_0 model"), "{stderr}");
    assert!(stderr.contains("read from the cache"), "{stderr}");
    // The load line gives the weights and the KV cache as held, not the compute dtype's.
    assert!(stderr.contains("weights q8_0 in "), "{stderr}");
    assert!(stderr.contains("KV cache f16 in "), "{stderr}");
    assert_eq!(first, off);
    assert_eq!(second, first);
    let info = std::process::Command::new(env!("CARGO_BIN_EXE_gpt2-tui"))
        .args(["info", "--format", "json", "--dtype", "q8_0", "--model"])
        .arg(&folder)
        .env("GPT2_TUI_CACHE_DIR", cache.path())
        .env("XDG_CONFIG_HOME", cache.path().join("no-config"))
        .output()
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["weights"], "q8_0");
    assert_eq!(info["quantized_cache"]["state"], "read from the cache");
    assert!(info["quantized_cache"]["path"]
        .as_str()
        .unwrap()
        .starts_with(cache.path().to_str().unwrap()));
    let models = std::process::Command::new(env!("CARGO_BIN_EXE_gpt2-tui"))
        .args(["models", "--format", "json"])
        .env("GPT2_TUI_CACHE_DIR", cache.path())
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&models.stdout).unwrap();
    // The user's own cache folder is listed too: pick this test's file.
    let listed = report["quantized"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| {
            f["path"]
                .as_str()
                .unwrap()
                .starts_with(cache.path().to_str().unwrap())
        })
        .expect("the cache file made above is listed");
    assert_eq!(listed["quant_type"], "q8_0");
    assert!(listed["bytes"].as_u64().unwrap() > 1_000_000);
    assert!(listed["source"]
        .as_str()
        .unwrap()
        .ends_with("model.safetensors"));
    assert_eq!(listed["source_present"], true);
    assert!(listed["problem"].is_null());
}
