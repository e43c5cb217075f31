//! The server harness of tests/serve.rs: start the real binary on a free port, talk to it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{fixtures, run_cli};

pub fn model() -> String {
    fixtures().join("tiny-gpt2").display().to_string()
}

pub struct Server {
    pub child: Child,
    pub base: String,
    pub stderr: Arc<Mutex<String>>,
    pub agent: ureq::Agent,
}

impl Server {
    pub fn start(extra: &[&str]) -> Server {
        let model = model();
        let mut args = vec!["serve", "--model", &model, "--port", "0"];
        args.extend_from_slice(extra);
        let mut child = Command::new(env!("CARGO_BIN_EXE_gpt2-tui"))
            .args(&args)
            .env("HF_HUB_OFFLINE", "1")
            .env(
                "XDG_CONFIG_HOME",
                std::env::temp_dir().join("gpt2-tui-test-no-config"),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("binary starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let mut lines = BufReader::new(child.stderr.take().expect("stderr"));
        let log = stderr.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            while lines.read_line(&mut line).unwrap_or(0) > 0 {
                if let Some(at) = line.find("http://") {
                    let addr: String = line[at..]
                        .chars()
                        .take_while(|c| !c.is_whitespace() && *c != '(')
                        .collect();
                    let _ = tx.send(addr);
                }
                log.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the server did not start: {}", stderr.lock().unwrap()));
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(60))
            .build();
        Server {
            child,
            base,
            stderr,
            agent,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// (status, body) of a request, errors included.
    pub fn send(&self, request: ureq::Request, body: Option<&str>) -> (u16, Value) {
        let result = match body {
            Some(body) => request.send_string(body),
            None => request.call(),
        };
        let response = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("request failed: {e}"),
        };
        let status = response.status();
        let text = response.into_string().expect("body");
        let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        (status, value)
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(self.agent.post(&self.url(path)), Some(&body.to_string()))
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.agent.get(&self.url(path)), None)
    }

    pub fn ok(&self, path: &str, body: &Value) -> Value {
        let (status, value) = self.post(path, body);
        assert_eq!(status, 200, "{value}");
        value
    }

    /// A streamed request's chunks (the `data:` lines before `[DONE]`), checking it ends so.
    pub fn stream(&self, path: &str, body: &Value) -> Vec<Value> {
        let response = self
            .agent
            .post(&self.url(path))
            .send_string(&body.to_string())
            .expect("stream starts");
        assert!(response
            .header("content-type")
            .unwrap_or("")
            .starts_with("text/event-stream"));
        let mut chunks = Vec::new();
        for line in BufReader::new(response.into_reader()).lines() {
            let line = line.expect("stream line");
            let Some(data) = line.strip_prefix("data: ") else {
                continue;
            };
            if data == "[DONE]" {
                return chunks;
            }
            chunks.push(serde_json::from_str(data).expect("chunk is JSON"));
        }
        panic!("the stream ended without [DONE]: {chunks:?}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn pipe_text(prompt: &str, max_tokens: usize) -> String {
    let model = model();
    let n = max_tokens.to_string();
    let (code, stdout, stderr) = run_cli(
        &[
            "--model",
            &model,
            "--temperature",
            "0",
            "--repeat-penalty",
            "1",
            "-n",
            &n,
            "--prompt",
            prompt,
        ],
        b"",
    );
    assert_eq!(code, 0, "{stderr}");
    stdout
        .strip_suffix('\n')
        .expect("a final newline")
        .to_string()
}

pub fn text_of(answer: &Value) -> String {
    answer["choices"][0]["text"]
        .as_str()
        .expect("text")
        .to_string()
}

pub fn check_usage(answer: &Value) {
    let usage = &answer["usage"];
    let (p, c, t) = (
        usage["prompt_tokens"].as_u64().expect("prompt_tokens"),
        usage["completion_tokens"]
            .as_u64()
            .expect("completion_tokens"),
        usage["total_tokens"].as_u64().expect("total_tokens"),
    );
    assert_eq!(p + c, t, "{usage}");
}

pub fn wait_idle(server: &Server, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let (_, health) = server.get("/health");
        if health["busy"] == false && health["pending"] == 0 {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "the worker is still busy: {health}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Time to the first streamed text, and the whole stream.
pub fn timed_stream(server: &Server, path: &str, body: &Value) -> (Duration, Duration, Vec<Value>) {
    let started = Instant::now();
    let response = server
        .agent
        .post(&server.url(path))
        .send_string(&body.to_string())
        .unwrap();
    let mut first = None;
    let mut chunks = Vec::new();
    for line in BufReader::new(response.into_reader()).lines() {
        let line = line.unwrap();
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        if data == "[DONE]" {
            break;
        }
        let chunk: Value = serde_json::from_str(data).unwrap();
        if first.is_none()
            && chunk["choices"][0]["text"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
        {
            first = Some(started.elapsed());
        }
        chunks.push(chunk);
    }
    let total = started.elapsed();
    (first.unwrap_or(total), total, chunks)
}

pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}
