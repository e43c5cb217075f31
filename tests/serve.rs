//! `gpt2-tui serve` on the real binary: each test starts a server on 127.0.0.1 (a free port,
//! `--port 0`) with the fixture model and talks to it over HTTP. Every wait is bounded.

mod common;
#[path = "serve/harness.rs"]
mod harness;

use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{fixtures, run_cli};
use harness::{
    check_usage, model, percentile, pipe_text, text_of, timed_stream, wait_idle, Server,
};
use serde_json::{json, Value};

#[test]
fn greedy_completions_equal_pipe_mode() {
    let server = Server::start(&[]);
    for (prompt, max_tokens) in [
        ("Hello, my name is", 12),
        ("The quick brown fox", 20),
        ("A", 5),
    ] {
        let answer = server.ok(
            "/v1/completions",
            &json!({"model": "anything", "prompt": prompt, "max_tokens": max_tokens, "temperature": 0}),
        );
        assert_eq!(text_of(&answer), pipe_text(prompt, max_tokens), "{answer}");
        assert_eq!(answer["model"], "anything");
        assert_eq!(answer["object"], "text_completion");
        check_usage(&answer);
        let generated = answer["usage"]["completion_tokens"].as_u64().unwrap();
        let reason = &answer["choices"][0]["finish_reason"];
        assert_eq!(
            reason,
            if generated == max_tokens as u64 {
                "length"
            } else {
                "stop"
            }
        );
        // The prompt as token ids gives the same text; `usage` counts those tokens.
        let ids = server.ok("/tokenize", &json!({"content": prompt}))["tokens"].clone();
        assert_eq!(
            answer["usage"]["prompt_tokens"],
            ids.as_array().unwrap().len()
        );
        let by_ids = server.ok(
            "/v1/completions",
            &json!({"prompt": ids, "max_tokens": max_tokens, "temperature": 0}),
        );
        assert_eq!(text_of(&by_ids), text_of(&answer));
        // Asked again, the prompt is all in the cache but its last token (run for its logits).
        let n = ids.as_array().unwrap().len() as u64;
        assert_eq!(by_ids["timings"]["cache_n"], n - 1, "{by_ids}");
        assert_eq!(by_ids["timings"]["prompt_n"], 1, "{by_ids}");
    }
}

#[test]
fn streamed_chunks_join_to_the_whole() {
    let server = Server::start(&[]);
    let body = json!({"prompt": "Once upon a time", "max_tokens": 24, "seed": 7, "logprobs": 2});
    let whole = server.ok("/v1/completions", &body);
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let chunks = server.stream("/v1/completions", &streamed);
    let joined: String = chunks
        .iter()
        .map(|c| c["choices"][0]["text"].as_str().unwrap())
        .collect();
    assert_eq!(joined, text_of(&whole));
    let tokens: Vec<Value> = chunks
        .iter()
        .flat_map(|c| {
            c["choices"][0]["logprobs"]["tokens"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(json!(tokens), whole["choices"][0]["logprobs"]["tokens"]);
    let last = chunks.last().unwrap();
    assert_eq!(
        last["choices"][0]["finish_reason"],
        whole["choices"][0]["finish_reason"]
    );
    assert_eq!(last["usage"], whole["usage"]);
    assert!(chunks[..chunks.len() - 1]
        .iter()
        .all(|c| c["choices"][0]["finish_reason"].is_null()));
    // Several choices, streamed: each joins to its own whole.
    let body = json!({"prompt": "Hi", "max_tokens": 6, "seed": 3, "n": 3});
    let whole = server.ok("/v1/completions", &body);
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let chunks = server.stream("/v1/completions", &streamed);
    for i in 0..3 {
        let joined: String = chunks
            .iter()
            .filter(|c| c["choices"][0]["index"] == i)
            .map(|c| c["choices"][0]["text"].as_str().unwrap())
            .collect();
        assert_eq!(joined, whole["choices"][i]["text"].as_str().unwrap());
    }
    // Chat: the deltas join to the message.
    let body = json!({"messages": [{"role": "user", "content": "Tell me a story"}], "max_tokens": 16, "seed": 5});
    let whole = server.ok("/v1/chat/completions", &body);
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let chunks = server.stream("/v1/chat/completions", &streamed);
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chunks[0]["object"], "chat.completion.chunk");
    let joined: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(
        joined,
        whole["choices"][0]["message"]["content"].as_str().unwrap()
    );
    assert_eq!(chunks.last().unwrap()["usage"], whole["usage"]);
}

#[test]
fn echo_and_logprobs_equal_score() {
    let server = Server::start(&[]);
    let file = fixtures().join("ppl.txt");
    let text = std::fs::read_to_string(&file).unwrap();
    let model = model();
    let (code, stdout, stderr) = run_cli(
        &[
            "score",
            "--model",
            &model,
            "--format",
            "jsonl",
            "--top",
            "3",
            &file.display().to_string(),
        ],
        b"",
    );
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &Value| v.get("done").is_none())
        .collect();
    let ids: Vec<u64> = lines.iter().map(|l| l["id"].as_u64().unwrap()).collect();
    for prompt in [json!(text), json!(ids)] {
        let answer = server.ok(
            "/v1/completions",
            &json!({"prompt": prompt, "echo": true, "logprobs": 3, "max_tokens": 0}),
        );
        let choice = &answer["choices"][0];
        assert_eq!(choice["text"], text.as_str());
        assert_eq!(choice["finish_reason"], "length");
        assert_eq!(answer["usage"]["completion_tokens"], 0);
        assert_eq!(answer["usage"]["prompt_tokens"], ids.len());
        let logprobs = &choice["logprobs"];
        let got = logprobs["token_logprobs"].as_array().unwrap();
        assert_eq!(got.len(), lines.len());
        assert!(got[0].is_null() && logprobs["top_logprobs"][0].is_null());
        for (i, (got, line)) in got.iter().zip(&lines).enumerate().skip(1) {
            let (a, b) = (got.as_f64().unwrap(), line["logprob"].as_f64().unwrap());
            assert!((a - b).abs() < 1e-5, "token {i}: served {a}, score {b}");
            let top = logprobs["top_logprobs"][i].as_object().unwrap();
            let best = &line["top"][0];
            let served = top[best["text"].as_str().unwrap()].as_f64().unwrap();
            assert!((served - best["logprob"].as_f64().unwrap()).abs() < 1e-5);
            assert_eq!(logprobs["tokens"][i], line["text"]);
        }
        // The offsets rebuild the text.
        let offsets: Vec<usize> = logprobs["text_offset"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(offsets[0], 0);
        assert!(offsets.windows(2).all(|w| w[0] <= w[1]));
    }
    // Echo with generation: the prompt then the continuation; a token's logprob is in both.
    let answer = server.ok(
        "/v1/completions",
        &json!({"prompt": "Hello world", "echo": true, "logprobs": 1, "max_tokens": 4, "temperature": 0}),
    );
    let text = text_of(&answer);
    assert!(text.starts_with("Hello world"), "{text}");
    assert_eq!(&text["Hello world".len()..], pipe_text("Hello world", 4));
    let n = answer["choices"][0]["logprobs"]["tokens"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(
        n as u64,
        2 + answer["usage"]["completion_tokens"].as_u64().unwrap()
    );
}

#[test]
fn chat_completions_answer_in_the_chat_shape() {
    let server = Server::start(&[]);
    let body = json!({
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi."},
            {"role": "user", "content": [{"type": "text", "text": "How are you?"}]},
        ],
        "max_tokens": 10,
        "temperature": 0,
        "logprobs": true,
        "top_logprobs": 2,
    });
    let answer = server.ok("/v1/chat/completions", &body);
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(answer["model"], "gpt-4o");
    let choice = &answer["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    let content = choice["message"]["content"].as_str().unwrap();
    assert_eq!(content, content.trim_start());
    assert!(["stop", "length"].contains(&choice["finish_reason"].as_str().unwrap()));
    check_usage(&answer);
    let entries = choice["logprobs"]["content"].as_array().unwrap();
    assert_eq!(
        entries.len() as u64,
        answer["usage"]["completion_tokens"].as_u64().unwrap()
    );
    for e in entries {
        assert!(e["logprob"].as_f64().unwrap() <= 0.0);
        assert_eq!(e["top_logprobs"].as_array().unwrap().len(), 2);
    }
    // Greedy is repeatable, and the prompt is the cache's the second time.
    let again = server.ok("/v1/chat/completions", &body);
    assert_eq!(again["choices"][0]["message"], choice["message"]);
    assert!(again["timings"]["cache_n"].as_u64().unwrap() > 0);
}

#[test]
fn bad_requests_get_openai_errors_and_the_server_keeps_serving() {
    let server = Server::start(&[]);
    let raw =
        |path: &str, body: &str| server.send(server.agent.post(&server.url(path)), Some(body));
    let cases: Vec<(&str, String, u16, Value)> = vec![
        ("/v1/completions", "{not json".into(), 400, Value::Null),
        ("/v1/completions", "[1, 2]".into(), 400, Value::Null),
        ("/v1/completions", "{}".into(), 400, json!("prompt")),
        ("/v1/completions", json!({"prompt": "x", "temperature": 3}).to_string(), 400, json!("temperature")),
        ("/v1/completions", json!({"prompt": "x", "temperature": "hot"}).to_string(), 400, json!("temperature")),
        ("/v1/completions", json!({"prompt": "x", "top_p": 1.5}).to_string(), 400, json!("top_p")),
        ("/v1/completions", json!({"prompt": "x", "max_tokens": -1}).to_string(), 400, json!("max_tokens")),
        ("/v1/completions", json!({"prompt": "x", "max_tokens": 0}).to_string(), 400, json!("max_tokens")),
        ("/v1/completions", json!({"prompt": "x", "n": 0}).to_string(), 400, json!("n")),
        ("/v1/completions", json!({"prompt": "x", "logprobs": 6}).to_string(), 400, json!("logprobs")),
        ("/v1/completions", json!({"prompt": "x", "stop": 3}).to_string(), 400, json!("stop")),
        ("/v1/completions", json!({"prompt": "x", "frequency_penalty": 2.5}).to_string(), 400, json!("frequency_penalty")),
        ("/v1/completions", json!({"prompt": "x", "logit_bias": {"50256": 200}}).to_string(), 400, json!("logit_bias.50256")),
        ("/v1/completions", json!({"prompt": "x", "logit_bias": {"the": 1}}).to_string(), 400, json!("logit_bias.the")),
        ("/v1/completions", json!({"prompt": [1, 70000]}).to_string(), 400, json!("prompt")),
        ("/v1/completions", json!({"prompt": 5}).to_string(), 400, json!("prompt")),
        ("/v1/completions", json!({"prompt": "x", "stream": "yes"}).to_string(), 400, json!("stream")),
        ("/v1/chat/completions", json!({}).to_string(), 400, json!("messages")),
        ("/v1/chat/completions", json!({"messages": []}).to_string(), 400, json!("messages")),
        ("/v1/chat/completions", json!({"messages": [{"role": "tool", "content": "x"}]}).to_string(), 400, json!("messages[0].role")),
        ("/v1/chat/completions", json!({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 30, "logprobs": true}).to_string(), 400, json!("top_logprobs")),
        ("/tokenize", json!({}).to_string(), 400, json!("content")),
        ("/detokenize", json!({"tokens": [-1]}).to_string(), 400, json!("tokens")),
        ("/v1/nothing", "{}".into(), 404, Value::Null),
    ];
    for (path, body, status, param) in cases {
        let (got, value) = raw(path, &body);
        assert_eq!(got, status, "{path} {body}: {value}");
        let error = &value["error"];
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{value}"
        );
        assert!(error["type"].is_string(), "{value}");
        assert!(
            error.get("code").is_some() && error.get("param").is_some(),
            "{value}"
        );
        if !param.is_null() {
            assert_eq!(error["param"], param, "{path} {body}: {value}");
            assert!(error["message"]
                .as_str()
                .unwrap()
                .contains(param.as_str().unwrap()));
        }
    }
    let (status, value) = server.get("/v1/missing");
    assert_eq!(
        (status, value["error"]["code"].clone()),
        (404, json!("not_found"))
    );
    let (status, _) = server.get("/v1/completions");
    assert_eq!(status, 405);
    // Over the body limit (1 MiB): 413. Only just over it: the server answers once it has read
    // past the limit and then closes, so a client still sending (150 KB more, before) could
    // meet a closed socket instead of the answer.
    let limit = 1 << 20;
    let big = json!({"prompt": "a".repeat(limit - 4)}).to_string();
    assert!(big.len() > limit && big.len() < limit + 64);
    let (status, value) = raw("/v1/completions", &big);
    assert_eq!(status, 413, "{value}");
    assert_eq!(value["error"]["code"], "request_too_large");
    // Still serving.
    let (status, health) = server.get("/health");
    assert_eq!((status, health["status"].clone()), (200, json!("ok")));
    server.ok("/v1/completions", &json!({"prompt": "x", "max_tokens": 2}));
    let (status, models) = server.get("/v1/models");
    assert_eq!(status, 200);
    assert_eq!(models["data"][0]["context_length"], 64);
    assert_eq!(models["data"][0]["object"], "model");
    let tokens = server.ok("/tokenize", &json!({"content": "Hello world"}))["tokens"].clone();
    assert_eq!(tokens, json!([15496, 995]));
    let back = server.ok("/detokenize", &json!({"tokens": tokens}));
    assert_eq!(back["content"], "Hello world");
}

#[test]
fn an_api_key_is_required_when_set() {
    let server = Server::start(&["--api-key", "sesame"]);
    let body = json!({"prompt": "x", "max_tokens": 1}).to_string();
    let post = || server.agent.post(&server.url("/v1/completions"));
    let (status, value) = server.send(post(), Some(&body));
    assert_eq!(status, 401);
    assert_eq!(value["error"]["code"], "invalid_api_key");
    let (status, _) = server.send(post().set("Authorization", "Bearer wrong"), Some(&body));
    assert_eq!(status, 401);
    let (status, _) = server.send(server.agent.get(&server.url("/v1/models")), None);
    assert_eq!(status, 401);
    let (status, value) = server.send(post().set("Authorization", "Bearer sesame"), Some(&body));
    assert_eq!(status, 200, "{value}");
    let (status, _) = server.get("/health");
    assert_eq!(status, 200);
}

#[test]
fn a_client_that_disconnects_mid_stream_frees_the_worker() {
    let server = Server::start(&[]);
    // Without the disconnect this would run for a very long time.
    let body =
        json!({"prompt": "Go on", "max_tokens": 100_000_000, "ignore_eos": true, "stream": true});
    let response = server
        .agent
        .post(&server.url("/v1/completions"))
        .send_string(&body.to_string())
        .unwrap();
    let mut reader = BufReader::new(response.into_reader());
    let mut seen = 0;
    let mut line = String::new();
    while seen < 5 {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0);
        seen += usize::from(line.starts_with("data: "));
    }
    let (_, health) = server.get("/health");
    assert_eq!(health["busy"], true);
    drop(reader);
    let freed = wait_idle(&server, Duration::from_secs(10));
    eprintln!(
        "worker free {:.1} ms after the client went away",
        freed.as_secs_f64() * 1e3
    );
    let started = Instant::now();
    let answer = server.ok(
        "/v1/completions",
        &json!({"prompt": "Next", "max_tokens": 3, "temperature": 0}),
    );
    assert_eq!(text_of(&answer), pipe_text("Next", 3));
    assert!(started.elapsed() < Duration::from_secs(10));
    // A non-streamed request whose client gives up is cancelled too.
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_millis(300))
        .build();
    let body = json!({"prompt": "Go on", "max_tokens": 100_000_000, "ignore_eos": true});
    assert!(agent
        .post(&server.url("/v1/completions"))
        .send_string(&body.to_string())
        .is_err());
    wait_idle(&server, Duration::from_secs(10));
}

#[test]
fn sigterm_stops_the_server_with_status_0() {
    let mut server = Server::start(&[]);
    // One request in flight when the signal comes.
    let body =
        json!({"prompt": "Go on", "max_tokens": 100_000_000, "ignore_eos": true, "stream": true});
    let response = server
        .agent
        .post(&server.url("/v1/completions"))
        .send_string(&body.to_string())
        .unwrap();
    let mut reader = BufReader::new(response.into_reader());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
    // The stream ends (with an error event) instead of running on.
    let mut rest = String::new();
    let _ = reader.read_to_string(&mut rest);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "still running");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "{}", server.stderr.lock().unwrap());
    assert!(
        rest.contains("shutting down"),
        "{}",
        &rest[rest.len().saturating_sub(300)..]
    );
}

#[test]
fn load_16_clients_20_requests_each_half_streamed() {
    const CLIENTS: usize = 16;
    const REQUESTS: usize = 20;
    let server = Arc::new(Server::start(&[]));
    let body = |c: usize, r: usize| {
        let mut body = json!({"prompt": format!("Client {c} asks question {r}:"), "max_tokens": 8});
        if r.is_multiple_of(2) {
            body["temperature"] = json!(0);
        } else {
            body["seed"] = json!(c * 1000 + r);
        }
        body
    };
    // The answers each request must get, asked one at a time.
    let mut expected = vec![vec![String::new(); REQUESTS]; CLIENTS];
    for (c, row) in expected.iter_mut().enumerate() {
        for (r, text) in row.iter_mut().enumerate() {
            *text = text_of(&server.ok("/v1/completions", &body(c, r)));
        }
    }
    let expected = Arc::new(expected);
    let started = Instant::now();
    let threads: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let server = server.clone();
            let expected = expected.clone();
            std::thread::spawn(move || {
                let mut latencies = Vec::new();
                let mut first_tokens = Vec::new();
                for r in 0..REQUESTS {
                    let mut request = body(c, r);
                    let t = Instant::now();
                    let text = if (c + r) % 2 == 0 {
                        request["stream"] = json!(true);
                        let (first, _, chunks) = timed_stream(&server, "/v1/completions", &request);
                        first_tokens.push(first);
                        chunks
                            .iter()
                            .map(|c| c["choices"][0]["text"].as_str().unwrap().to_string())
                            .collect::<String>()
                    } else {
                        text_of(&server.ok("/v1/completions", &request))
                    };
                    latencies.push(t.elapsed());
                    assert_eq!(text, expected[c][r], "client {c} request {r}");
                }
                (latencies, first_tokens)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut first_tokens = Vec::new();
    for t in threads {
        let (l, f) = t.join().expect("a client failed");
        latencies.extend(l);
        first_tokens.extend(f);
    }
    let wall = started.elapsed();
    latencies.sort();
    first_tokens.sort();
    assert_eq!(latencies.len(), CLIENTS * REQUESTS);
    eprintln!(
        "load: {} requests in {:.2} s = {:.1} requests/s; latency p50 {:.1} ms, p99 {:.1} ms; time to first token (streamed) p50 {:.1} ms, p99 {:.1} ms",
        latencies.len(),
        wall.as_secs_f64(),
        latencies.len() as f64 / wall.as_secs_f64(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        percentile(&first_tokens, 0.5),
        percentile(&first_tokens, 0.99),
    );
    // Time to first token, one client: a prompt whose prefix the cache holds vs one it does not.
    let prefix =
        "The history of the city begins with a small village on the river, where fishermen";
    let other =
        "In the mountains far to the north, a tribe of shepherds kept their flocks and told";
    let mut shared = Vec::new();
    let mut fresh = Vec::new();
    for i in 0..20 {
        let ask = |text: String| json!({"prompt": text, "max_tokens": 2, "temperature": 0, "stream": true});
        // The cache holds `prefix` after this one...
        timed_stream(&server, "/v1/completions", &ask(prefix.to_string()));
        let (t, _, chunks) =
            timed_stream(&server, "/v1/completions", &ask(format!("{prefix} {i}")));
        assert!(
            chunks.last().unwrap()["timings"]["cache_n"]
                .as_u64()
                .unwrap()
                > 0
        );
        shared.push(t);
        // ...and `other`'s tokens must all run.
        let (t, _, _) = timed_stream(&server, "/v1/completions", &ask(format!("{other} {i}")));
        fresh.push(t);
    }
    shared.sort();
    fresh.sort();
    eprintln!(
        "time to first token: shared prefix p50 {:.2} ms, no shared prefix p50 {:.2} ms",
        percentile(&shared, 0.5),
        percentile(&fresh, 0.5)
    );
}
