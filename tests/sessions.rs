//! `gpt2-tui sessions` on the real binary: saved conversations newest first, bad files named.

use std::process::Command;

use gpt2_tui::engine::chat::{ChatFormat, Role, Turn};
use gpt2_tui::generate::SamplingParams;
use gpt2_tui::sessions::{Mode, Session, Store};

fn run(data_home: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gpt2-tui"))
        .args(args)
        .env("XDG_DATA_HOME", data_home)
        .env(
            "XDG_CONFIG_HOME",
            std::env::temp_dir().join("gpt2-tui-test-no-config"),
        )
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn session(first: &str, updated: u64) -> Session {
    let mut s = Session::new(
        "tiny-gpt2",
        Mode::Chat,
        ChatFormat::Dialogpt,
        SamplingParams::default(),
    );
    s.turns = vec![
        Turn {
            role: Role::User,
            text: first.into(),
        },
        Turn {
            role: Role::Model,
            text: "Good my lord".into(),
        },
    ];
    s.updated = updated;
    s
}

#[test]
fn lists_newest_first_and_names_the_bad_files() {
    let data = tempfile::tempdir().unwrap();
    let (code, out, err) = run(data.path(), &["sessions"]);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (0, "", ""),
        "no folder yet: none"
    );

    let store = Store::new(data.path().join("gpt2-tui").join("sessions"));
    let old = session("What light through yonder window breaks", 1_700_000_000);
    let new = session("But soft", 1_800_000_000);
    store.save(&old).unwrap();
    store.save(&new).unwrap();
    std::fs::write(store.dir().join("broken.json"), "{\"version\": 1, \"id\"").unwrap();

    let (code, out, err) = run(data.path(), &["sessions"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            format!("{}\t2027-01-15 08:00\ttiny-gpt2\t2\tBut soft", new.id),
            format!(
                "{}\t2023-11-14 22:13\ttiny-gpt2\t2\tWhat light through yonder window breaks",
                old.id
            ),
        ]
    );
    assert!(
        err.contains("broken.json") && err.contains("corrupt or truncated"),
        "{err}"
    );

    let (code, out, _) = run(data.path(), &["sessions", "--format", "jsonl"]);
    assert_eq!(code, 0);
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["id"], new.id.as_str());
    assert_eq!(rows[0]["turns"], 2);
    assert_eq!(rows[0]["title"], "But soft");
    assert_eq!(rows[1]["updated"], 1_700_000_000u64);
    assert!(rows[2]["file"].as_str().unwrap().ends_with("broken.json"));
    assert!(rows[2]["error"].as_str().unwrap().contains("corrupt"));
}

#[test]
fn resume_outside_a_terminal_is_a_usage_error() {
    let data = tempfile::tempdir().unwrap();
    let (code, _, err) = run(data.path(), &["--resume", "x"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--resume"), "{err}");
}
