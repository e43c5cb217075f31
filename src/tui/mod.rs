//! The interactive interface: ratatui on crossterm, with inference on its own thread.

pub mod clipboard;
pub mod controls;
pub mod editor;
mod event_loop;
pub mod keys;
pub mod slash;
pub mod state;
mod terminal;
pub mod theme;
pub mod view;

use crate::cli::Cli;
use crate::config::Config;
use crate::engine::chat::ChatFormat;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::load::DownloadEvent;
use state::{App, Mode};

pub fn run(cli: &Cli, config: &Config) -> Result<()> {
    let params = cli.generate.sampling(config);
    params.validate().map_err(Error::Usage)?;
    let model_spec = cli.common.model_spec(config);
    let mode = if config.chat.mode == "complete" {
        Mode::Complete
    } else {
        Mode::Chat
    };
    let format = ChatFormat::choose(&config.chat.format, &model_spec);
    let (themes, problems) =
        theme::load_themes(Config::default_dir().map(|d| d.join("themes")).as_deref());
    let mut app = App::new(
        params,
        mode,
        format,
        config.chat.system.clone(),
        themes,
        &config.ui.theme,
    );
    if !problems.is_empty() {
        app.message = Some(problems.join("; "));
    }
    let store = crate::sessions::Store::default_location();
    app.attach_sessions(store.clone(), config.chat.autosave, &model_spec);
    if let Some(id) = &cli.resume {
        let store = store
            .as_ref()
            .ok_or_else(|| Error::Usage("--resume: no data folder for sessions".into()))?;
        let session = if id.is_empty() {
            store.latest()
        } else {
            store.open(id)
        }
        .map_err(|e| Error::Usage(format!("--resume: {e}")))?;
        app.restore_session(session);
    }

    let common = cli.common.clone();
    let load_config = config.clone();
    let engine = Engine::start(Box::new(move |progress: &dyn Fn(String)| {
        progress(model_spec.clone());
        let mut report = |event: &DownloadEvent| {
            let stage = match event {
                DownloadEvent::Contacting { model } => format!("asking the hub for {model}"),
                DownloadEvent::Start { file, .. } => format!("downloading {file}"),
                DownloadEvent::Progress { file, done, total } => {
                    format!("downloading {file} {}%", done * 100 / (*total).max(1))
                }
                _ => return,
            };
            progress(stage);
        };
        crate::load::load_session_with(&common, &load_config, &mut report).map(
            |(session, report)| {
                let notes = report
                    .notes()
                    .iter()
                    .map(|n| n.trim_start_matches("gpt2-tui: ").to_string())
                    .collect();
                (session, notes)
            },
        )
    }));

    let mut tui = terminal::Tui::enter()?;
    event_loop::run(&mut tui.terminal, &mut app, &engine)
}
