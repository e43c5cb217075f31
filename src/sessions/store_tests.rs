use super::*;
use crate::engine::chat::{ChatFormat, Role, Turn};
use crate::generate::SamplingParams;
use crate::sessions::{Mode, SavedBranch, SavedReply};

fn session(text: &str) -> Session {
    let mut s = Session::new(
        "tiny-gpt2",
        Mode::Chat,
        ChatFormat::Transcript,
        SamplingParams {
            temperature: 0.3,
            top_k: 7,
            seed: Some(42),
            logit_bias: vec!["50256=-inf".parse().unwrap()],
            ..SamplingParams::default()
        },
    );
    s.system = "be brief".into();
    s.turns = vec![
        Turn {
            role: Role::User,
            text: text.into(),
        },
        Turn {
            role: Role::Model,
            text: "Good my lord".into(),
        },
    ];
    s.document = "Once upon".into();
    s.continuation_start = Some(4);
    s.replies = vec![SavedReply {
        turn: Some(1),
        active: 1,
        branches: vec![
            SavedBranch {
                text: "Good".into(),
                tokens: vec![(1, "Good".into(), 0.5)],
            },
            SavedBranch {
                text: "Good my lord".into(),
                tokens: vec![(1, "Good".into(), 0.5), (2, " my lord".into(), 0.25)],
            },
        ],
    }];
    s.title = "named".into();
    s.renamed = true;
    s.updated = s.created + 5;
    s
}

#[test]
fn every_field_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().join("sessions"));
    let s = session("What light through yonder window breaks?");
    let path = store.save(&s).unwrap();
    assert_eq!(
        path,
        dir.path().join("sessions").join(format!("{}.json", s.id))
    );
    assert_eq!(store.open(&s.id).unwrap(), s);
    assert_eq!(Store::read(&path).unwrap(), s);
    let (list, problems) = store.list().unwrap();
    assert!(problems.is_empty());
    assert_eq!(list.len(), 1);
    assert_eq!(
        (
            list[0].turns,
            list[0].title.as_str(),
            list[0].model.as_str()
        ),
        (2, "named", "tiny-gpt2")
    );
}

#[test]
fn a_writer_killed_before_the_rename_leaves_the_old_file_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let old = session("the old text");
    let path = store.save(&old).unwrap();
    // What a writer killed between write and rename leaves: a half-written temporary file.
    let mut new = old.clone();
    new.turns[0].text = "the new text".into();
    let json = serde_json::to_string(&new).unwrap();
    let temp = crate::atomic_file::temp_path(&path);
    std::fs::write(&temp, &json[..json.len() / 2]).unwrap();
    assert_eq!(Store::read(&path).unwrap(), old);
    let (list, problems) = store.list().unwrap();
    assert!(
        problems.is_empty(),
        "the temporary file is not listed: {problems:?}"
    );
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].id, old.id);
    // The next write replaces the file whole.
    store.save(&new).unwrap();
    assert_eq!(store.open(&old.id).unwrap(), new);
}

#[test]
fn corrupt_truncated_and_newer_files_are_reported_and_the_rest_still_list() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let good = session("good");
    store.save(&good).unwrap();
    let json = serde_json::to_string(&good).unwrap();
    std::fs::write(dir.path().join("truncated.json"), &json[..json.len() - 10]).unwrap();
    std::fs::write(dir.path().join("garbage.json"), "\u{0}\u{1}not json").unwrap();
    let newer = json.replacen("\"version\":1", "\"version\":99", 1);
    assert_ne!(newer, json);
    std::fs::write(dir.path().join("newer.json"), &newer).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a session").unwrap();
    let (list, problems) = store.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].id, good.id);
    let named: Vec<(String, &str)> = problems
        .iter()
        .map(|p| {
            (
                p.file.file_name().unwrap().to_string_lossy().into_owned(),
                p.error.as_str(),
            )
        })
        .collect();
    assert_eq!(named.len(), 3, "{named:?}");
    assert_eq!(named[0].0, "garbage.json");
    assert!(named[0].1.contains("corrupt or truncated"), "{named:?}");
    assert_eq!(named[1].0, "newer.json");
    assert!(
        named[1].1.contains("newer gpt2-tui (format 99"),
        "{named:?}"
    );
    assert_eq!(named[2].0, "truncated.json");
    assert!(named[2].1.contains("corrupt or truncated"), "{named:?}");
    let e = store.open("newer").unwrap_err();
    assert!(e.contains("newer.json") && e.contains("format 99"), "{e}");
    // Nothing was rewritten.
    assert_eq!(
        std::fs::read_to_string(dir.path().join("newer.json")).unwrap(),
        newer
    );
    assert!(store
        .open("missing")
        .unwrap_err()
        .contains("no saved session \"missing\""));
    assert!(store.open("../x").is_err());
}

#[test]
fn two_stores_in_one_folder_keep_their_own_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (Store::new(dir.path()), Store::new(dir.path()));
    let mut a = session("first instance");
    let mut b = session("second instance");
    assert_ne!(a.id, b.id);
    b.updated = a.updated + 1;
    for n in 0..5 {
        a.turns[1].text = format!("a {n}");
        b.turns[1].text = format!("b {n}");
        one.save(&a).unwrap();
        two.save(&b).unwrap();
    }
    assert_eq!(one.open(&a.id).unwrap(), a);
    assert_eq!(one.open(&b.id).unwrap(), b);
    let (list, _) = one.list().unwrap();
    let ids: Vec<&str> = list.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, [b.id.as_str(), a.id.as_str()], "newest first");
    assert_eq!(one.latest().unwrap(), b);
    one.delete(&b.id).unwrap();
    assert_eq!(two.latest().unwrap(), a);
}

#[test]
fn an_unreadable_folder_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "x").unwrap();
    let e = Store::new(&file).list().unwrap_err();
    assert!(e.contains("plain-file"), "{e}");
    assert_eq!(
        Store::new(dir.path().join("absent")).list().unwrap(),
        (vec![], vec![])
    );
}
