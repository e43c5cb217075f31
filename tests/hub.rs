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
        "GPT2_TUI_CACHE_DIR",
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

fn greedy_args(model: &str) -> Vec<&str> {
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

/// A hub model's quantized copy sits in its repository's folder of the Hugging Face cache
/// (deleting the repository deletes it too): written by the first 8-bit start, read by the
/// next, listed by `models`; the platform cache folder stays empty.
#[test]
fn a_hub_models_quantized_copy_sits_beside_it() {
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join("hub");
    cache_model(
        &cache,
        "someone/sharded",
        Some("main"),
        COMMIT,
        &family("gpt2-medium-sharded"),
    );
    let platform_cache = home.path().join("xdg-cache");
    let env = [
        ("HF_HOME", home.path().to_str().unwrap()),
        ("HF_HUB_OFFLINE", "1"),
        ("XDG_CACHE_HOME", platform_cache.to_str().unwrap()),
    ];
    let mut args = greedy_args("someone/sharded");
    args.extend(["--dtype", "q8_0"]);
    let folder = cache
        .join("models--someone--sharded")
        .join("gpt2-tui-quantized");
    let first = run(&args, &env);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(
        first.stderr.contains("quantized to q8_0, cached at")
            && first.stderr.contains(folder.to_str().unwrap()),
        "{}",
        first.stderr
    );
    let second = run(&args, &env);
    assert!(
        second.stderr.contains("loaded cached q8_0 model")
            && second.stderr.contains(folder.to_str().unwrap()),
        "{}",
        second.stderr
    );
    assert_eq!(second.stdout, first.stdout);
    let files: Vec<_> = std::fs::read_dir(&folder).unwrap().collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(!platform_cache.join("gpt2-tui").exists());
    let models = run(&["models", "--format", "json"], &env);
    let report: Value = serde_json::from_str(&models.stdout).unwrap();
    let listed = report["quantized"][0]["path"].as_str().unwrap();
    assert!(listed.starts_with(folder.to_str().unwrap()), "{listed}");
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
    // The load line names the weights' format and the KV cache's dtype as held.
    assert!(r.stderr.contains("weights f32 in "), "{}", r.stderr);
    assert!(r.stderr.contains("KV cache f32 in "), "{}", r.stderr);
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

/// Every request the stand-in hub saw: the path and the `Authorization` header, if any.
type SeenRequests = std::sync::Arc<std::sync::Mutex<Vec<(String, Option<String>)>>>;

/// A stand-in for the hub on the loopback interface: serves one repository from a folder
/// (the file listing, and each file with the headers hf-hub reads) and records every request.
struct FakeHub {
    endpoint: String,
    requests: SeenRequests,
}

impl FakeHub {
    /// `listed` adds names to the listing that are not served (files a client must not fetch).
    /// Repositories other than `repo` answer 404, except `gated/*`, which answers 401.
    fn start(repo: &str, folder: &Path, listed: &[&str]) -> Self {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = requests.clone();
        let repo = repo.to_string();
        let folder = folder.to_path_buf();
        let mut names: Vec<String> = std::fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.extend(listed.iter().map(|s| s.to_string()));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { break };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                let path = request_line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("")
                    .to_string();
                let (mut auth, mut range) = (None, None);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                        break;
                    }
                    let (key, value) = line.split_once(':').unwrap_or((&line, ""));
                    match key.trim().to_ascii_lowercase().as_str() {
                        "authorization" => auth = Some(value.trim().to_string()),
                        "range" => range = Some(value.trim().to_string()),
                        _ => {}
                    }
                }
                log.lock().unwrap().push((path.clone(), auth));
                let mut headers = vec![("Connection".to_string(), "close".to_string())];
                let (status, body): (&str, Vec<u8>) = if path.starts_with("/api/models/gated/") {
                    ("401 Unauthorized", b"{\"error\":\"gated\"}".to_vec())
                } else if path == format!("/api/models/{repo}/revision/main") {
                    let siblings: Vec<Value> = names
                        .iter()
                        .map(|n| serde_json::json!({ "rfilename": n }))
                        .collect();
                    let listing = serde_json::json!({ "sha": COMMIT, "siblings": siblings });
                    ("200 OK", listing.to_string().into_bytes())
                } else if let Some(file) = path
                    .strip_prefix(&format!("/{repo}/resolve/main/"))
                    .filter(|f| folder.join(f).is_file())
                {
                    let bytes = std::fs::read(folder.join(file)).unwrap();
                    let size = bytes.len();
                    let spec = range.unwrap_or_else(|| "bytes=0-".into());
                    let spec = spec.trim_start_matches("bytes=");
                    let (a, b) = spec.split_once('-').unwrap();
                    let start: usize = a.parse().unwrap();
                    let end: usize = if b.is_empty() {
                        size - 1
                    } else {
                        b.parse().unwrap()
                    };
                    let etag: String = file.bytes().map(|c| format!("{c:02x}")).collect();
                    headers.push(("ETag".into(), format!("\"{etag}\"")));
                    headers.push(("X-Repo-Commit".into(), COMMIT.into()));
                    headers.push((
                        "Content-Range".into(),
                        format!("bytes {start}-{end}/{size}"),
                    ));
                    ("206 Partial Content", bytes[start..=end].to_vec())
                } else {
                    ("404 Not Found", b"{\"error\":\"not found\"}".to_vec())
                };
                let mut head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
                for (k, v) in headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body);
            }
        });
        Self { endpoint, requests }
    }

    fn paths(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|(p, _)| p.clone())
            .collect()
    }
}

/// A download end to end, against a stand-in hub on the loopback interface: only the files a
/// GPT-2 needs are fetched (shards included), the token is sent, progress goes to stderr, the
/// files land in the standard cache layout, and the next run needs no network.
#[test]
fn downloads_only_the_needed_files_into_the_cache() {
    let folder = family("gpt2-medium-sharded");
    let hub = FakeHub::start(
        "someone/sharded",
        &folder,
        &[
            "pytorch_model.bin",
            "tf_model.h5",
            "flax_model.msgpack",
            "README.md",
        ],
    );
    let home = tempfile::tempdir().unwrap();
    let hf_home = home.path().to_str().unwrap();
    let env = [
        ("HF_HOME", hf_home),
        ("HF_ENDPOINT", hub.endpoint.as_str()),
        ("HF_TOKEN", "hf_test_token"),
    ];
    let r = run(&greedy_args("someone/sharded"), &env);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, expected_text(&folder));
    assert!(
        r.stderr.contains("downloading someone/sharded"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("model-00002-of-00003.safetensors"),
        "{}",
        r.stderr
    );

    let mut fetched: Vec<String> = hub
        .paths()
        .iter()
        .filter_map(|p| {
            p.strip_prefix("/someone/sharded/resolve/main/")
                .map(String::from)
        })
        .collect();
    fetched.sort();
    fetched.dedup();
    assert_eq!(
        fetched,
        [
            "config.json",
            "model-00001-of-00003.safetensors",
            "model-00002-of-00003.safetensors",
            "model-00003-of-00003.safetensors",
            "model.safetensors.index.json",
            "tokenizer.json"
        ]
    );
    for (path, auth) in hub.requests.lock().unwrap().iter() {
        assert_eq!(auth.as_deref(), Some("Bearer hf_test_token"), "{path}");
    }

    // The standard layout, so Python tools find the files too.
    let repo = home.path().join("hub/models--someone--sharded");
    assert_eq!(
        std::fs::read_to_string(repo.join("refs/main"))
            .unwrap()
            .trim(),
        COMMIT
    );
    let config = repo.join("snapshots").join(COMMIT).join("config.json");
    assert!(config.symlink_metadata().unwrap().file_type().is_symlink());
    assert_eq!(
        std::fs::read(&config).unwrap(),
        std::fs::read(folder.join("config.json")).unwrap()
    );

    // Offline now, and listed by `models`.
    let requests_before = hub.paths().len();
    let offline = run(
        &greedy_args("someone/sharded"),
        &[("HF_HOME", hf_home), ("HF_HUB_OFFLINE", "1")],
    );
    assert_eq!(offline.code, 0, "{}", offline.stderr);
    assert_eq!(offline.stdout, r.stdout);
    let cached = run(
        &greedy_args("someone/sharded"),
        &[("HF_HOME", hf_home), ("HF_ENDPOINT", hub.endpoint.as_str())],
    );
    assert_eq!(cached.code, 0, "{}", cached.stderr);
    assert_eq!(
        hub.paths().len(),
        requests_before,
        "a cached model is not looked up"
    );
    let models = run(&["models", "--format", "json"], &[("HF_HOME", hf_home)]);
    let report: Value = serde_json::from_str(&models.stdout).unwrap();
    assert_eq!(report["other"][0]["repo"], "someone/sharded");
    assert_eq!(report["other"][0]["state"], "complete");
}

#[test]
fn hub_refusals_are_explained() {
    let hub = FakeHub::start("someone/exists", &family("distilgpt2"), &[]);
    let home = tempfile::tempdir().unwrap();
    let env = [
        ("HF_HOME", home.path().to_str().unwrap()),
        ("HF_ENDPOINT", hub.endpoint.as_str()),
    ];
    let gated = run(&greedy_args("gated/model"), &env);
    assert_eq!(gated.code, 1, "{}", gated.stderr);
    assert!(
        gated.stderr.contains("gated/model") && gated.stderr.contains("HF_TOKEN"),
        "{}",
        gated.stderr
    );
    let missing = run(&greedy_args("someone/missing"), &env);
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("someone/missing") && missing.stderr.contains("no such repository"),
        "{}",
        missing.stderr
    );
}

#[test]
fn a_repository_that_is_not_gpt2_is_refused_before_the_weights_download() {
    let folder = tempfile::tempdir().unwrap();
    for f in ["model.safetensors", "tokenizer.json"] {
        std::fs::copy(family("distilgpt2").join(f), folder.path().join(f)).unwrap();
    }
    std::fs::write(
        folder.path().join("config.json"),
        r#"{"model_type": "llama", "hidden_size": 8}"#,
    )
    .unwrap();
    let hub = FakeHub::start("someone/llama", folder.path(), &[]);
    let home = tempfile::tempdir().unwrap();
    let env = [
        ("HF_HOME", home.path().to_str().unwrap()),
        ("HF_ENDPOINT", hub.endpoint.as_str()),
    ];
    let r = run(&greedy_args("someone/llama"), &env);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("llama") && r.stderr.contains("not GPT-2"),
        "{}",
        r.stderr
    );
    assert!(
        !hub.paths().iter().any(|p| p.ends_with("model.safetensors")),
        "{:?}",
        hub.paths()
    );
}

/// `--gguf-file` fetches that one file of a repository and loads it; a repository of GGUF
/// files only gives its first; a name it lacks is refused with the files it has.
#[test]
fn gguf_files_come_from_the_hub() {
    let folder = tempfile::tempdir().unwrap();
    let gguf = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gguf");
    for name in ["wide-q4_0.gguf", "wide-q8_0.gguf"] {
        std::fs::copy(gguf.join(name), folder.path().join(name)).unwrap();
    }
    let hub = FakeHub::start("someone/ggufs", folder.path(), &["README.md"]);
    let home = tempfile::tempdir().unwrap();
    let env = [
        ("HF_HOME", home.path().to_str().unwrap()),
        ("HF_ENDPOINT", hub.endpoint.as_str()),
    ];
    let mut args = greedy_args("someone/ggufs");
    args.extend(["--gguf-file", "wide-q8_0.gguf"]);
    let r = run(&args, &env);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        expected_text(&folder.path().join("wide-q8_0.gguf"))
    );
    let fetched: Vec<String> = hub
        .paths()
        .iter()
        .filter_map(|p| {
            p.strip_prefix("/someone/ggufs/resolve/main/")
                .map(String::from)
        })
        .collect();
    assert!(fetched.iter().all(|f| f == "wide-q8_0.gguf"), "{fetched:?}");

    // Without the flag, in a fresh cache: the first GGUF file the listing names, as the
    // repository has no checkpoint. (A cache that already holds one of its GGUF files answers
    // with that one, without asking the hub.)
    let fresh = tempfile::tempdir().unwrap();
    let fresh_env = [
        ("HF_HOME", fresh.path().to_str().unwrap()),
        ("HF_ENDPOINT", hub.endpoint.as_str()),
    ];
    let r = run(&greedy_args("someone/ggufs"), &fresh_env);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        expected_text(&folder.path().join("wide-q4_0.gguf"))
    );

    let last = args.len() - 1;
    args[last] = "nope.gguf";
    let r = run(&args, &env);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("nope.gguf") && r.stderr.contains("wide-q4_0.gguf, wide-q8_0.gguf")
            || r.stderr.contains("wide-q8_0.gguf, wide-q4_0.gguf"),
        "{}",
        r.stderr
    );
}
