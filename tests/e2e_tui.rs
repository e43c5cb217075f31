//! The real binary in a real terminal (tmux): type, watch the answer stream, change settings
//! live, stop a generation, quit, and find the terminal restored.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

struct Tmux {
    session: String,
}

impl Tmux {
    fn run(args: &[&str]) -> String {
        let out = Command::new("tmux").args(args).output().expect("tmux runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn start(command: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let session = format!("gpt2tui-e2e-{}-{n}", std::process::id());
        let status = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                &session,
                "-x",
                "100",
                "-y",
                "30",
                command,
            ])
            .status()
            .expect("tmux starts");
        assert!(status.success());
        Self { session }
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.session];
        args.extend(keys);
        Self::run(&args);
    }

    fn screen(&self) -> String {
        Self::run(&["capture-pane", "-p", "-t", &self.session])
    }

    /// Waits until `check` holds for the screen, or fails with the screen shown.
    fn wait_for(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.screen();
            if check(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        Self::run(&["kill-session", "-t", &self.session]);
    }
}

#[test]
fn chat_live_settings_stop_and_quit_in_a_real_terminal() {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("skipped: tmux is not installed (.ci/run installs it)");
        return;
    }
    let config_home = tempfile::tempdir().unwrap();
    let model = common::fixtures().join("tiny-gpt2");
    let command = format!(
        "XDG_CONFIG_HOME={} {} --model {} --max-tokens 20 --seed 3; echo EXITED $?; sleep 30",
        config_home.path().display(),
        env!("CARGO_BIN_EXE_gpt2-tui"),
        model.display()
    );
    let tmux = Tmux::start(&command);
    tmux.wait_for("the model to load", |s| {
        s.contains("idle") && s.contains("tiny-gpt2")
    });

    // A message, and a streamed answer under it.
    tmux.keys(&["Hello there", "Enter"]);
    let screen = tmux.wait_for("the answer", |s| {
        s.contains("idle")
            && s.lines()
                .any(|l| l.contains("GPT-2:") && l.trim_end_matches('│').trim().len() > 10)
    });
    assert!(screen.contains("You: Hello there"), "{screen}");

    // Live settings, by command and by keys.
    tmux.keys(&["/set temperature 0.42", "Enter"]);
    tmux.wait_for("the panel to show 0.42", |s| {
        s.lines()
            .any(|l| l.contains("temperature") && l.contains("0.42"))
    });
    tmux.keys(&["Tab", "Right", "Tab"]);
    tmux.wait_for("the panel to show 0.47", |s| {
        s.lines()
            .any(|l| l.contains("temperature") && l.contains("0.47"))
    });

    // A long generation, stopped with Esc: the partial reply stays.
    tmux.keys(&["/set max_tokens 1000000", "Enter"]);
    tmux.keys(&["Go on", "Enter"]);
    tmux.wait_for("generation to start", |s| s.contains("generating"));
    tmux.keys(&["Escape"]);
    let screen = tmux.wait_for("the stop", |s| s.contains("idle") && s.contains("stopped"));
    assert!(
        screen.contains("You: Go on") || screen.contains("GPT-2:"),
        "{screen}"
    );

    // Quit: the program ends with status 0 and leaves the alternate screen.
    tmux.keys(&["C-c"]);
    tmux.wait_for("the program to exit", |s| s.contains("EXITED 0"));
    let alternate = Tmux::run(&[
        "display-message",
        "-p",
        "-t",
        &tmux.session,
        "#{alternate_on}",
    ]);
    assert_eq!(
        alternate.trim(),
        "0",
        "the terminal is back on the main screen"
    );
}

/// README's run command starts the interface on the bundled model, with no model files and no
/// network (the hub is switched off).
#[test]
fn starts_on_the_bundled_model_offline() {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("skipped: tmux is not installed (.ci/run installs it)");
        return;
    }
    let config_home = tempfile::tempdir().unwrap();
    let empty_cache = tempfile::tempdir().unwrap();
    let command = format!(
        "cd {} && XDG_CONFIG_HOME={} HF_HOME={} HF_HUB_OFFLINE=1 {}; echo EXITED $?; sleep 30",
        empty_cache.path().display(),
        config_home.path().display(),
        empty_cache.path().display(),
        env!("CARGO_BIN_EXE_gpt2-tui"),
    );
    let tmux = Tmux::start(&command);
    tmux.wait_for("the bundled model", |s| {
        s.contains("idle") && s.contains("bundled")
    });
    tmux.keys(&["Good morrow", "Enter"]);
    tmux.wait_for("a reply", |s| s.contains("idle") && s.contains("GPT-2:"));
    tmux.keys(&["C-c"]);
    tmux.wait_for("the program to exit", |s| s.contains("EXITED 0"));
}
