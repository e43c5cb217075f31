//! `gpt2-tui serve`: a local OpenAI-compatible HTTP server on the same engine as the interface
//! and pipe mode. The model is loaded once; one worker thread owns the session and runs
//! requests first come, first served ([`worker`]); the HTTP side ([`routes`]) reads and checks
//! requests ([`openai`]), and writes answers in the OpenAI shapes ([`reply`], [`errors`]).
//!
//! HTTP: axum on tokio. axum is the tokio project's own server framework, on hyper (the HTTP
//! implementation most of the Rust ecosystem runs on); it gives routing, body limits,
//! middleware (the API key) and server-sent events without hand-written protocol code, and
//! tokio, hyper and tower were already in the dependency tree's lock file. tokio runs only the
//! sockets (two threads): the model runs on the worker thread and candle's own pool.
//!
//! Ctrl+C or SIGTERM stops the server: the running generation stops at its next token (its
//! client gets an error event or a 503), queued requests are refused with 503, and the process
//! exits 0 once the connections are closed (at most [`GRACE`] later).

mod errors;
mod openai;
mod reply;
mod routes;
mod worker;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::{CommonArgs, ServeArgs};
use crate::config::Config;
use crate::engine::chat::ChatFormat;
use crate::error::{Error, Result};
use crate::load::load_session;

/// How long connections may take to close after a shutdown signal.
const GRACE: Duration = Duration::from_secs(5);

pub fn run(common: &CommonArgs, config: &Config, args: &ServeArgs) -> Result<()> {
    let session = load_session(common, config)?;
    let chat_format = ChatFormat::choose(&config.chat.format, &session.name);
    let name = session.name.clone();
    let window = session.window();
    let tokenizer = session.shared_tokenizer();
    let eos = session.eos_id();
    let parameters = session.parameter_count();
    let device = crate::runtime::device::device_name(session.device());
    let dtype = session.weight_format();
    let (worker, thread) = worker::spawn(session);
    let state = Arc::new(routes::AppState {
        worker: worker.clone(),
        tokenizer,
        model_name: name.clone(),
        window,
        eos,
        parameters,
        chat_format,
        api_key: args.api_key.clone(),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("gpt2-tui-serve-http")
        .enable_all()
        .build()
        .map_err(|e| Error::Other(format!("cannot start the server runtime: {e}")))?;
    let served = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
            .await
            .map_err(|e| {
                Error::Usage(format!("cannot listen on {}:{}: {e}", args.host, args.port))
            })?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Other(format!("the listening address: {e}")))?;
        eprintln!(
            "gpt2-tui: serving {name} ({device}, {dtype}, window {window}, chat format {}) on http://{addr} (OpenAI API: http://{addr}/v1); Ctrl+C stops",
            chat_format.name()
        );
        let stopping = Arc::new(tokio::sync::Notify::new());
        let signal = {
            let stopping = stopping.clone();
            let flag = worker.shutdown.clone();
            async move {
                wait_for_signal().await;
                eprintln!("gpt2-tui: stopping the server");
                flag.store(true, Ordering::SeqCst);
                stopping.notify_waiters();
                stopping.notify_one();
            }
        };
        let server = axum::serve(listener, routes::router(state)).with_graceful_shutdown(signal);
        tokio::select! {
            result = server => result.map_err(|e| Error::Other(format!("the server failed: {e}"))),
            _ = async { stopping.notified().await; tokio::time::sleep(GRACE).await } => {
                eprintln!("gpt2-tui: connections still open after {} s; exiting", GRACE.as_secs());
                Ok(())
            }
        }
    });
    worker.shutdown.store(true, Ordering::SeqCst);
    drop(worker);
    // Connections still open hold handles to the worker: do not wait on them.
    runtime.shutdown_timeout(Duration::from_millis(100));
    if thread.is_finished() {
        let _ = thread.join();
    }
    served
}

/// Ctrl+C, or SIGTERM on Unix.
async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => ctrl_c.await,
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await;
}
