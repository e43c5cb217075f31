//! Models named by hub repository id or alias: found in a folder laid out like the Hugging Face
//! cache (`models--org--name/{refs,snapshots,blobs}`), and clear, fast errors when they are not
//! there and the hub cannot be reached. No test talks to the real hub.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const OTHER_COMMIT: &str = "fedcba9876543210fedcba9876543210fedcba98";

fn family(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/family")
        .join(name)
}

/// Lays `files` of `src` out in `cache` as huggingface_hub does: the bytes in `blobs/`, the
/// snapshot's files as relative links to them, and `refs/<reference>` naming the commit.
fn cache_model(cache: &Path, repo: &str, reference: Option<&str>, commit: &str, src: &Path) {
    let folder = cache.join(format!("models--{}", repo.replace('/', "--")));
    let snapshot = folder.join("snapshots").join(commit);
    std::fs::create_dir_all(folder.join("blobs")).unwrap();
    std::fs::create_dir_all(&snapshot).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let blob = format!("{commit}-{}", name.replace('.', "_"));
        std::fs::copy(&path, folder.join("blobs").join(&blob)).unwrap();
        std::os::unix::fs::symlink(Path::new("../../blobs").join(&blob), snapshot.join(&name))
            .unwrap();
    }
    if let Some(reference) = reference {
        std::fs::create_dir_all(folder.join("refs")).unwrap();
        std::fs::write(folder.join("refs").join(reference), commit).unwrap();
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// Runs the binary with a clean Hugging Face environment plus `env`.
fn run(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gpt2-tui"));
    cmd.args(args)
        .env(
            "XDG_CONFIG_HOME",
            std::env::temp_dir().join("gpt2-tui-test-no-config"),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in [
        "HF_HOME",
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_TOKEN_PATH",
        "HF_ENDPOINT",
        "XDG_CACHE_HOME",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let output = cmd.output().expect("binary runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

fn greedy_args<'a>(model: &'a str) -> Vec<&'a str> {
    vec![
        "--model",
        model,
        "--prompt",
        "Hello, world!",
        "--temperature",
        "0",
        "--max-tokens",
        "8",
        "--ignore-eos",
        "--device",
        "cpu",
    ]
}

/// What the model writes when loaded straight from its folder.
fn expected_text(folder: &Path) -> String {
    let r = run(&greedy_args(folder.to_str().unwrap()), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.stdout
}

#[test]
fn a_repository_in_the_cache_loads_offline() {
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join("hub");
    cache_model(
        &cache,
        "someone/tiny-distil",
        Some("main"),
        COMMIT,
        &family("distilgpt2"),
    );
    let hf_home = home.path().to_str().unwrap();
    let r = run(
        &greedy_args("someone/tiny-distil"),
        &[("HF_HOME", hf_home), ("HF_HUB_OFFLINE", "1")],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, expected_text(&family("distilgpt2")));
    assert_eq!(r.stderr, "", "a cached model loads silently");

    // HF_HUB_CACHE names the hub folder itself.
    let r = run(
        &greedy_args("someone/tiny-distil"),
        &[
            ("HF_HUB_CACHE", cache.to_str().unwrap()),
            ("HF_HUB_OFFLINE", "1"),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);

    // A cached model needs no network even without HF_HUB_OFFLINE: nothing is contacted.
    let r = run(
        &greedy_args("someone/tiny-distil"),
        &[("HF_HOME", hf_home), ("HF_ENDPOINT", "http://127.0.0.1:1")],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn stats_name_the_repository() {
    let home = tempfile::tempdir().unwrap();
    cache_model(
        &home.path().join("hub"),
        "someone/tiny-dialog",
        Some("main"),
        COMMIT,
        &family("dialogpt-medium-bin"),
    );
    let mut args = greedy_args("someone/tiny-dialog");
    args.push("--stats");
    let r = run(
        &args,
        &[
            ("HF_HOME", home.path().to_str().unwrap()),
            ("HF_HUB_OFFLINE", "1"),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let stats: Value = serde_json::from_str(r.stderr.lines().last().unwrap()).unwrap();
    assert_eq!(stats["model"], "someone/tiny-dialog");
    assert_eq!(stats["device"], "cpu");
    assert!(r.stderr.contains("of weights"), "{}", r.stderr);
}

#[test]
fn revisions_pick_their_snapshot() {
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join("hub");
    // main is one model, the tag v2 and a bare commit another.
    cache_model(
        &cache,
        "someone/tiny",
        Some("main"),
        COMMIT,
        &family("distilgpt2"),
    );
    cache_model(
        &cache,
        "someone/tiny",
        Some("v2"),
        OTHER_COMMIT,
        &family("gpt2-xl-f16"),
    );
    let env = [
        ("HF_HOME", home.path().to_str().unwrap()),
        ("HF_HUB_OFFLINE", "1"),
    ];
    let main = run(&greedy_args("someone/tiny"), &env);
    let tag = run(&greedy_args("someone/tiny@v2"), &env);
    let spec = format!("someone/tiny@{OTHER_COMMIT}");
    let commit = run(&greedy_args(&spec), &env);
    for r in [&main, &tag, &commit] {
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    assert_eq!(main.stdout, expected_text(&family("distilgpt2")));
    assert_eq!(tag.stdout, expected_text(&family("gpt2-xl-f16")));
    assert_eq!(commit.stdout, tag.stdout);
    let missing = run(&greedy_args("someone/tiny@v3"), &env);
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("someone/tiny@v3"),
        "{}",
        missing.stderr
    );
}

#[test]
fn aliases_find_python_caches_under_new_and_old_ids() {
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join("hub");
    // `gpt2` as cached under today's id, `distilgpt2` under the id Python users typed years ago.
    cache_model(
        &cache,
        "openai-community/gpt2",
        Some("main"),
        COMMIT,
        &family("gpt2-bf16"),
    );
    cache_model(
        &cache,
        "distilgpt2",
        Some("main"),
        COMMIT,
        &family("distilgpt2"),
    );
    cache_model(
        &cache,
        "microsoft/DialoGPT-medium",
        Some("main"),
        COMMIT,
        &family("dialogpt-medium-bin"),
    );
    let env = [
        ("HF_HOME", home.path().to_str().unwrap()),
        ("HF_HUB_OFFLINE", "1"),
    ];
    for (alias, folder) in [
        ("gpt2", "gpt2-bf16"),
        ("distilgpt2", "distilgpt2"),
        ("dialogpt-medium", "dialogpt-medium-bin"),
        ("DialoGPT-medium", "dialogpt-medium-bin"),
    ] {
        let r = run(&greedy_args(alias), &env);
        assert_eq!(r.code, 0, "{alias}: {}", r.stderr);
        assert_eq!(r.stdout, expected_text(&family(folder)), "{alias}");
    }
}

#[test]
fn offline_with_an_empty_cache_fails_at_once_naming_model_and_cache() {
    let home = tempfile::tempdir().unwrap();
    let env = [
        ("HF_HOME", home.path().to_str().unwrap()),
        ("HF_HUB_OFFLINE", "1"),
    ];
    let r = run(&greedy_args("gpt2-large"), &env);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.elapsed < Duration::from_secs(5), "{:?}", r.elapsed);
    let line = r.stderr.trim_end();
    assert_eq!(line.lines().count(), 1, "one line: {line}");
    for needle in [
        "openai-community/gpt2-large",
        &home.path().join("hub").display().to_string(),
        "HF_HUB_OFFLINE",
        "huggingface-cli download openai-community/gpt2-large",
    ] {
        assert!(line.contains(needle), "{needle:?} not in {line}");
    }
}

#[test]
fn a_partial_copy_in_the_cache_says_what_is_missing() {
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join("hub");
    let partial = tempfile::tempdir().unwrap();
    std::fs::copy(
        family("distilgpt2").join("config.json"),
        partial.path().join("config.json"),
    )
    .unwrap();
    cache_model(&cache, "someone/half", Some("main"), COMMIT, partial.path());
    let env = [
        ("HF_HOME", home.path().to_str().unwrap()),
        ("HF_HUB_OFFLINE", "1"),
    ];
    let r = run(&greedy_args("someone/half"), &env);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("part of it") && r.stderr.contains("weights"),
        "{}",
        r.stderr
    );
}

/// No network (the default endpoint, which this machine cannot reach): a model that is not
/// cached fails within seconds, naming the model and the cache. A repository that cannot exist
/// is used so that a machine with network does not download anything either.
#[test]
fn no_network_and_no_cache_fails_fast() {
    let home = tempfile::tempdir().unwrap();
    let env = [("HF_HOME", home.path().to_str().unwrap())];
    let r = run(&greedy_args("gpt2-tui-tests/no-such-model-3f9a"), &env);
    assert_ne!(r.code, 0);
    assert!(r.elapsed < Duration::from_secs(20), "took {:?}", r.elapsed);
    let line = r.stderr.trim_end();
    assert_eq!(line.lines().count(), 1, "one line: {line}");
    assert!(line.contains("gpt2-tui-tests/no-such-model-3f9a"), "{line}");
}

/// An endpoint that refuses connections fails at once; one that accepts but never answers
/// (a stalled network) fails when the lookup times out, well under 20 s.
#[test]
fn an_unreachable_or_silent_hub_fails_within_seconds() {
    let home = tempfile::tempdir().unwrap();
    let hub = home.path().join("hub").display().to_string();
    // Refused: a port that was just free.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let refused = format!("http://127.0.0.1:{port}");
    // Silent: accepts, reads, never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(40);
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            held.push(stream);
            if Instant::now() > deadline {
                break;
            }
        }
    });
    for (endpoint, limit) in [(refused, 5), (silent, 20)] {
        let env = [
            ("HF_HOME", home.path().to_str().unwrap()),
            ("HF_ENDPOINT", endpoint.as_str()),
        ];
        let r = run(&greedy_args("gpt2"), &env);
        assert_eq!(r.code, 1, "{endpoint}: {}", r.stderr);
        assert!(
            r.elapsed < Duration::from_secs(limit),
            "{endpoint}: took {:?}",
            r.elapsed
        );
        let line = r.stderr.trim_end();
        assert_eq!(line.lines().count(), 1, "one line: {line}");
        for needle in [
            "openai-community/gpt2",
            &hub,
            "cannot be reached",
            &endpoint,
        ] {
            assert!(line.contains(needle), "{needle:?} not in {line}");
        }
    }
}

#[test]
fn models_lists_aliases_cache_and_bundled() {
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join("hub");
    cache_model(
        &cache,
        "openai-community/gpt2",
        Some("main"),
        COMMIT,
        &family("gpt2-bf16"),
    );
    cache_model(
        &cache,
        "someone/finetune",
        Some("main"),
        COMMIT,
        &family("distilgpt2"),
    );
    // Not a GPT-2: left out.
    let llama = tempfile::tempdir().unwrap();
    std::fs::write(
        llama.path().join("config.json"),
        r#"{"model_type": "llama", "hidden_size": 8}"#,
    )
    .unwrap();
    cache_model(&cache, "someone/llama", Some("main"), COMMIT, llama.path());
    let env = [("HF_HOME", home.path().to_str().unwrap())];

    let r = run(&["models", "--format", "json"], &env);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["cache"], cache.display().to_string());
    let aliases = report["aliases"].as_array().unwrap();
    let names: Vec<&str> = aliases
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    for alias in [
        "gpt2",
        "gpt2-medium",
        "gpt2-large",
        "gpt2-xl",
        "distilgpt2",
        "dialogpt-small",
        "dialogpt-medium",
        "dialogpt-large",
    ] {
        assert!(names.contains(&alias), "{alias} in {names:?}");
    }
    let gpt2 = &aliases[0];
    assert_eq!(gpt2["state"], "complete");
    let folder_bytes: u64 = ["config.json", "model.safetensors", "tokenizer.json"]
        .iter()
        .map(|f| {
            std::fs::metadata(family("gpt2-bf16").join(f))
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(gpt2["bytes"], folder_bytes);
    assert_eq!(aliases[1]["state"], "absent");
    let other: Vec<&str> = report["other"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["repo"].as_str().unwrap())
        .collect();
    assert_eq!(other, ["someone/finetune"]);
    assert!(report.get("bundled").is_some());

    let text = run(&["--list-models"], &env);
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert!(
        text.stdout.contains("openai-community/gpt2-xl"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("someone/finetune"), "{}", text.stdout);
    assert!(text.stdout.contains("Bundled"), "{}", text.stdout);
}

/// The memory check: a config whose weights cannot fit fails before reading them, clearly.
#[test]
fn a_model_too_large_for_memory_is_refused_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["model.safetensors", "tokenizer.json"] {
        std::fs::copy(family("distilgpt2").join(f), dir.path().join(f)).unwrap();
    }
    let mut config: Value = serde_json::from_str(
        &std::fs::read_to_string(family("distilgpt2").join("config.json")).unwrap(),
    )
    .unwrap();
    // A GPT-2 with 10^14 parameters.
    config["n_embd"] = 262144.into();
    config["n_head"] = 64.into();
    config["n_layer"] = 128.into();
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let r = run(&greedy_args(dir.path().to_str().unwrap()), &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let line = r.stderr.trim_end();
    assert_eq!(line.lines().count(), 1, "one line: {line}");
    for needle in ["needs about", "available", "MemAvailable", "--dtype bf16"] {
        assert!(line.contains(needle), "{needle:?} not in {line}");
    }
}
