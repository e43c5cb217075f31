//! The real binary in a real terminal (tmux): type, watch the answer stream, change settings
//! live, stop a generation, quit, and find the terminal restored.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

/// A tmux server of the test's own (its own socket, no config file read), so options the test
/// sets never reach the user's tmux, and one session in it.
struct Tmux {
    socket: String,
    session: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn start(name: &str, command: &str) -> Self {
        let session = format!("gpt2tui-e2e-{name}-{}", std::process::id());
        let socket = session.clone();
        let status = Command::new("tmux")
            .args(["-L", &socket, "-f", "/dev/null"])
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
        Self { socket, session }
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.session];
        args.extend(keys);
        self.run(&args);
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", &self.session])
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
        self.run(&["kill-server"]);
    }
}

fn have_tmux() -> bool {
    let ok = Command::new("tmux").arg("-V").output().is_ok();
    if !ok {
        eprintln!("skipped: tmux is not installed (.ci/run installs it)");
    }
    ok
}

/// The shell line that runs the program on the fixture model and then reports how it ended and
/// the terminal's modes (`stty -a`), so the test can see the terminal was given back.
fn program(config_home: &std::path::Path, env: &str, flags: &str) -> String {
    format!(
        "{env} XDG_CONFIG_HOME={} XDG_DATA_HOME={0}/data {} --model {} {flags}; echo EXITED $?; stty -a | tr -s ' ;\\n' '\\n\\n\\n' | grep -xE -- '-?(icanon|echo)' | tr '\\n' ' '; echo; sleep 30",
        config_home.display(),
        env!("CARGO_BIN_EXE_gpt2-tui"),
        common::fixtures().join("tiny-gpt2").display()
    )
}

/// After the program ended: back on the main screen, with line editing and echo on again.
fn assert_restored(tmux: &Tmux, screen: &str) {
    let alternate = tmux.run(&[
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
    let modes = screen
        .lines()
        .find(|l| l.contains("icanon"))
        .unwrap_or_else(|| panic!("stty output on screen:\n{screen}"));
    assert!(
        modes.split_whitespace().any(|m| m == "icanon")
            && modes.split_whitespace().any(|m| m == "echo"),
        "raw mode is off again: {modes}"
    );
}

#[test]
fn chat_live_settings_stop_and_quit_in_a_real_terminal() {
    if !have_tmux() {
        return;
    }
    let config_home = tempfile::tempdir().unwrap();
    let tmux = Tmux::start(
        "chat",
        &program(config_home.path(), "", "--max-tokens 20 --seed 3"),
    );
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

    // The token cursor: the alternatives at the last token, a branch from the second one, and
    // back to the first branch.
    tmux.keys(&["F6"]);
    tmux.wait_for("the alternatives", |s| s.contains("settings at this token"));
    tmux.keys(&["Enter", "Down", "Enter"]);
    tmux.wait_for("the branch", |s| {
        s.contains("idle") && s.contains("branch 2/2")
    });
    tmux.keys(&["b"]);
    tmux.wait_for("the first branch again", |s| s.contains("branch 1/2"));
    tmux.keys(&["a"]);
    tmux.wait_for("the attention view", |s| s.contains("strongest"));
    tmux.keys(&["Escape"]);
    tmux.wait_for("the alternatives again", |s| {
        s.contains("settings at this token")
    });
    tmux.keys(&["Escape"]);
    tmux.wait_for("the cursor to close", |s| {
        !s.contains("token ") && s.contains("message")
    });

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

    // A long generation: a change in the panel reaches it mid-reply, then Esc stops it and the
    // partial reply stays.
    tmux.keys(&["/set max_tokens 1000000", "Enter"]);
    tmux.keys(&["Go on", "Enter"]);
    tmux.wait_for("generation to start", |s| s.contains("generating"));
    tmux.keys(&["Tab", "Left", "Left"]);
    tmux.wait_for("the live change to reach the reply", |s| {
        s.contains("generating")
            && s.contains("settings in use from token")
            && s.lines()
                .any(|l| l.contains("temperature") && l.contains("0.37"))
    });
    tmux.keys(&["Tab", "Escape"]);
    let screen = tmux.wait_for("the stop", |s| s.contains("idle") && s.contains("stopped"));
    assert!(
        screen.contains("You: Go on") || screen.contains("GPT-2:"),
        "{screen}"
    );

    // Quit: the program ends with status 0 and gives the terminal back.
    tmux.keys(&["C-c"]);
    let screen = tmux.wait_for("the program to exit", |s| {
        s.contains("EXITED 0") && s.contains("icanon")
    });
    assert_restored(&tmux, &screen);
}

#[test]
fn the_typed_message_is_scored_and_the_cursor_shows_what_was_expected_there() {
    if !have_tmux() {
        return;
    }
    let config_home = tempfile::tempdir().unwrap();
    let tmux = Tmux::start(
        "prompt",
        &program(config_home.path(), "", "--max-tokens 3 --seed 3"),
    );
    tmux.wait_for("the model to load", |s| {
        s.contains("idle") && s.contains("tiny-gpt2")
    });
    // The views on first: the message is scored from its prefill.
    tmux.keys(&["F3"]);
    tmux.wait_for("the colour legend", |s| s.contains("p: ■<10%"));
    tmux.keys(&["The quick brown fox", "Enter"]);
    tmux.wait_for("the answer", |s| s.contains("idle") && s.contains("GPT-2:"));
    // From the reply up onto the message, then one token to the left.
    tmux.keys(&["F6"]);
    tmux.wait_for("the cursor", |s| s.contains("settings at this token"));
    tmux.keys(&["Up"]);
    tmux.wait_for("the cursor on the message", |s| {
        s.contains("your text · token 4/4")
    });
    tmux.keys(&["Left"]);
    let screen = tmux.wait_for("what the model expected there", |s| {
        s.contains("your text · token 3/4") && s.contains("│entropy ")
    });
    assert!(screen.contains("token \" brown\""), "{screen}");
    // Ten alternatives, each with its probability.
    let rows: Vec<&str> = screen
        .lines()
        .skip_while(|l| !l.contains("│entropy "))
        .skip(1)
        .take(10)
        .collect();
    assert!(
        rows.len() == 10 && rows.iter().all(|l| l.contains('%')),
        "ten alternatives:\n{screen}"
    );
    tmux.keys(&["t"]);
    tmux.wait_for("no draw for the user's text", |s| s.contains("no draw"));
    tmux.keys(&["Escape", "C-c"]);
    let screen = tmux.wait_for("the program to exit", |s| {
        s.contains("EXITED 0") && s.contains("icanon")
    });
    assert_restored(&tmux, &screen);
}

#[test]
fn copying_reaches_tmux_as_an_osc_52_escape() {
    if !have_tmux() {
        return;
    }
    let config_home = tempfile::tempdir().unwrap();
    let tmux = Tmux::start(
        "copy",
        &program(config_home.path(), "", "--max-tokens 3 --seed 3"),
    );
    // tmux takes an OSC 52 escape into a paste buffer when set-clipboard is on.
    tmux.run(&["set-option", "-g", "set-clipboard", "on"]);
    tmux.wait_for("the model to load", |s| {
        s.contains("idle") && s.contains("tiny-gpt2")
    });
    tmux.keys(&["Hello there", "Enter"]);
    tmux.wait_for("the answer", |s| s.contains("idle") && s.contains("GPT-2:"));
    // The message cursor up onto the user's message, and y.
    tmux.keys(&["M-Up", "Up"]);
    tmux.keys(&["y"]);
    tmux.wait_for("the copy", |s| s.contains("copied"));
    let buffer = || tmux.run(&["show-buffer"]);
    assert_eq!(buffer(), "Hello there", "the escape reached tmux");
    tmux.keys(&["Escape"]);
    // Apart, or the terminal reads Escape and `/` as Alt+/.
    std::thread::sleep(Duration::from_millis(300));
    tmux.keys(&["/copy all", "Enter"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !buffer().starts_with("# Conversation with tiny-gpt2") {
        assert!(
            Instant::now() < deadline,
            "no Markdown copy: {:?}",
            buffer()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(buffer().contains("**You**: Hello there"), "{}", buffer());
    assert!(buffer().contains("**GPT-2**: "), "{}", buffer());
    tmux.keys(&["C-c"]);
    let screen = tmux.wait_for("the program to exit", |s| {
        s.contains("EXITED 0") && s.contains("icanon")
    });
    assert_restored(&tmux, &screen);
}

#[test]
fn a_panic_in_the_interface_still_restores_the_terminal() {
    if !have_tmux() {
        return;
    }
    let config_home = tempfile::tempdir().unwrap();
    let tmux = Tmux::start(
        "panic",
        &program(config_home.path(), "GPT2_TUI_TEST_PANIC_KEY=1", ""),
    );
    tmux.wait_for("the model to load", |s| {
        s.contains("idle") && s.contains("tiny-gpt2")
    });
    tmux.keys(&["F12"]);
    let screen = tmux.wait_for("the program to exit", |s| {
        s.contains("EXITED 101") && s.contains("icanon")
    });
    assert!(
        screen.contains("test panic"),
        "the panic message is shown: {screen}"
    );
    assert_restored(&tmux, &screen);
}

#[test]
fn a_tiny_terminal_and_rapid_resizing_do_not_break_it() {
    if !have_tmux() {
        return;
    }
    let config_home = tempfile::tempdir().unwrap();
    let tmux = Tmux::start(
        "resize",
        &program(config_home.path(), "", "--max-tokens 1000000"),
    );
    tmux.wait_for("the model to load", |s| {
        s.contains("idle") && s.contains("tiny-gpt2")
    });
    tmux.keys(&["hello", "Enter"]);
    tmux.wait_for("generation to start", |s| s.contains("generating"));
    for (w, h) in [
        (20, 5),
        (100, 30),
        (7, 2),
        (61, 12),
        (20, 5),
        (150, 40),
        (20, 5),
    ] {
        tmux.run(&[
            "resize-window",
            "-t",
            &tmux.session,
            "-x",
            &w.to_string(),
            "-y",
            &h.to_string(),
        ]);
        std::thread::sleep(Duration::from_millis(30));
    }
    tmux.keys(&["Escape"]);
    tmux.run(&[
        "resize-window",
        "-t",
        &tmux.session,
        "-x",
        "100",
        "-y",
        "30",
    ]);
    tmux.wait_for("the stop, still drawing", |s| {
        s.contains("idle") && s.contains("stopped")
    });
    tmux.keys(&["/quit", "Enter"]);
    let screen = tmux.wait_for("the program to exit", |s| {
        s.contains("EXITED 0") && s.contains("icanon")
    });
    assert_restored(&tmux, &screen);
}

/// README's run command starts the interface on the bundled model, with no model files and no
/// network (the hub is switched off).
#[test]
fn starts_on_the_bundled_model_offline() {
    if !have_tmux() {
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
    let tmux = Tmux::start("bundled", &command);
    tmux.wait_for("the bundled model", |s| {
        s.contains("idle") && s.contains("bundled")
    });
    tmux.keys(&["Good morrow", "Enter"]);
    // A long reply scrolls its "GPT-2:" label out of view, so the status bar tells instead: the
    // speed is only measured once the engine has produced tokens, and it is idle again after.
    tmux.wait_for("a reply", |s| {
        s.contains("idle") && s.contains(" tok/s") && !s.contains(" 0.0 tok/s")
    });
    tmux.keys(&["C-c"]);
    tmux.wait_for("the program to exit", |s| s.contains("EXITED 0"));
}

/// The program alone in the pane (so `#{pane_pid}` is its process), saving in `data_home`.
fn bare_program(data_home: &std::path::Path, flags: &str) -> String {
    format!(
        "XDG_CONFIG_HOME={0} XDG_DATA_HOME={0} exec {1} --model {2} {flags}",
        data_home.display(),
        env!("CARGO_BIN_EXE_gpt2-tui"),
        common::fixtures().join("tiny-gpt2").display()
    )
}

#[test]
fn a_chat_killed_mid_reply_is_listed_and_resumed() {
    if !have_tmux() {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let tmux = Tmux::start(
        "kill",
        &bare_program(data.path(), "--max-tokens 12 --seed 3"),
    );
    tmux.wait_for("the model to load", |s| {
        s.contains("idle") && s.contains("tiny-gpt2")
    });
    tmux.keys(&["Hello there", "Enter"]);
    tmux.wait_for("the first answer", |s| {
        s.contains("idle") && s.contains("GPT-2:")
    });
    tmux.keys(&["/set max_tokens 1000000", "Enter"]);
    tmux.keys(&["Go on", "Enter"]);
    tmux.wait_for("the long reply", |s| s.contains("generating"));
    std::thread::sleep(Duration::from_millis(2500));
    assert!(tmux.screen().contains("generating"), "still writing");
    let pid = tmux.run(&["display-message", "-p", "-t", &tmux.session, "#{pane_pid}"]);
    let killed_at = gpt2_tui::sessions::now();
    let status = Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .unwrap();
    assert!(status.success());
    drop(tmux);

    let store = gpt2_tui::sessions::Store::new(data.path().join("gpt2-tui").join("sessions"));
    let (list, problems) = store.list().unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(list.len(), 1, "{list:?}");
    let saved = store.open(&list[0].id).unwrap();
    let texts: Vec<&str> = saved.turns.iter().map(|t| t.text.as_str()).collect();
    assert_eq!(texts.len(), 4, "{texts:?}");
    assert_eq!((texts[0], texts[2]), ("Hello there", "Go on"));
    assert!(!texts[3].is_empty(), "the partial reply was saved");
    assert!(
        saved.updated + 2 >= killed_at,
        "written within about a second of the kill: {} vs {killed_at}",
        saved.updated
    );

    // `gpt2-tui sessions` lists it.
    let out = Command::new(env!("CARGO_BIN_EXE_gpt2-tui"))
        .arg("sessions")
        .env("XDG_DATA_HOME", data.path())
        .env("XDG_CONFIG_HOME", data.path())
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.starts_with(&format!("{}\t", saved.id))
            && listed.contains("\ttiny-gpt2\t4\tHello there"),
        "{listed}"
    );

    // `--resume`: both messages and the partial reply are there.
    let tmux = Tmux::start("resume", &bare_program(data.path(), "--resume"));
    let last_word = texts[3]
        .split_whitespace()
        .last()
        .filter(|w| w.chars().count() < 40)
        .unwrap_or("GPT-2:")
        .to_string();
    tmux.wait_for("the resumed chat", |s| {
        s.contains("idle") && s.contains(&last_word)
    });
    let mut seen = false;
    for _ in 0..200 {
        let screen = tmux.screen();
        if screen.contains("You: Hello there") && screen.contains("You: Go on") {
            seen = true;
            break;
        }
        tmux.keys(&["PageUp"]);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(seen, "both messages are there:\n{}", tmux.screen());
}

#[test]
fn resume_of_an_unknown_id_names_it_and_exits_2() {
    if !have_tmux() {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let tmux = Tmux::start(
        "resume-unknown",
        &format!(
            "{}; echo EXITED $?; sleep 30",
            bare_program(data.path(), "--resume nope").replace("exec ", "")
        ),
    );
    let screen = tmux.wait_for("the error", |s| s.contains("EXITED"));
    assert!(screen.contains("EXITED 2"), "{screen}");
    assert!(screen.contains("no saved session \"nope\""), "{screen}");
}

/// The interface says where an 8-bit model came from (stderr would draw over its screen): the
/// first start that it quantized and cached the model, the second that it read the cache.
#[test]
fn the_status_bar_says_whether_the_quantized_cache_was_used() {
    if !have_tmux() {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let command = format!(
        "XDG_CONFIG_HOME={0} XDG_DATA_HOME={0} GPT2_TUI_CACHE_DIR={0}/q {1} --model {2} --dtype q8_0; echo EXITED $?; sleep 30",
        home.path().display(),
        env!("CARGO_BIN_EXE_gpt2-tui"),
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/model").display()
    );
    for (start, said) in [
        ("first", "quantized to q8_0"),
        ("second", "loaded cached q8_0"),
    ] {
        let tmux = Tmux::start(&format!("cache-{start}"), &command);
        tmux.wait_for(&format!("the {start} start to say {said:?}"), |s| {
            s.contains("idle") && s.contains(said)
        });
        tmux.keys(&["C-c"]);
        tmux.wait_for("the program to exit", |s| s.contains("EXITED 0"));
    }
}
