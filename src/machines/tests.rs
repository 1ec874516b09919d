use super::*;

fn dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("rackboot-machines-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

const MAC: Mac = Mac([0x52, 0x54, 0, 1, 2, 3]);

fn pin(profile: &str) -> impl FnOnce(&mut Record) -> Result<(), String> + '_ {
    move |r| {
        r.machine = Some(Overlay {
            profile: Some(profile.into()),
            netboot: Some(Netboot::Local),
            ..Overlay::default()
        });
        Ok(())
    }
}

#[test]
fn changes_survive_a_reopen_and_the_key_stays() {
    let d = dir("reopen");
    let path = d.join("machines.state");
    let book = Book::open(&path).unwrap();
    let tag = book.done_tag(&MAC, 0);
    book.change(MAC, pin("web")).unwrap();
    book.change(MAC, |r| {
        r.round += 1;
        Ok(())
    })
    .unwrap();
    drop(book);
    let book = Book::open(&path).unwrap();
    let r = book.record(&MAC).unwrap();
    assert_eq!(r.round, 1);
    assert_eq!(r.machine.unwrap().profile.as_deref(), Some("web"));
    assert_eq!(book.done_tag(&MAC, 0), tag, "the signing key is kept");
    assert!(book.tag_fits(&MAC, 0, &tag));
    assert!(!book.tag_fits(&MAC, 1, &tag));
    // Compacted: the header and one line.
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_torn_last_line_is_dropped_and_a_corrupt_one_stops_the_open() {
    let d = dir("torn");
    let path = d.join("machines.state");
    let book = Book::open(&path).unwrap();
    book.change(MAC, pin("web")).unwrap();
    drop(book);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{\"mac\":\"52:54:00:09:09:09\",\"sta");
    std::fs::write(&path, &text).unwrap();
    let book = Book::open(&path).unwrap();
    assert_eq!(book.records().len(), 1);
    drop(book);
    let mut lines: Vec<String> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    lines.insert(1, "not json".into());
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let e = Book::open(&path).unwrap_err();
    assert!(e.contains(":2:"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_second_book_cannot_open_a_held_file() {
    let d = dir("lock");
    let path = d.join("machines.state");
    let book = Book::open(&path).unwrap();
    let e = Book::open(&path).unwrap_err();
    assert!(e.contains("another rackboot holds it"), "{e}");
    drop(book);
    Book::open(&path).unwrap();
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_refused_edit_and_a_memory_book_change_nothing() {
    let book = Book::memory("no state file");
    assert_eq!(book.change(MAC, pin("web")).unwrap_err(), "no state file");
    assert!(book.record(&MAC).is_none());
    let d = dir("refuse");
    let book = Book::open(&d.join("m")).unwrap();
    assert_eq!(book.change(MAC, |_| Err("no".into())).unwrap_err(), "no");
    assert!(book.record(&MAC).is_none());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn overlays_check_what_goes_into_templates() {
    let bad = Overlay {
        hostname: Some("a\nb".into()),
        ..Overlay::default()
    };
    assert!(bad.check().unwrap_err().contains("`hostname`"));
    let mut vars = BTreeMap::new();
    vars.insert("a b".into(), "x".into());
    let bad = Overlay {
        vars,
        ..Overlay::default()
    };
    assert!(bad.check().unwrap_err().contains("`vars`"));
}

#[test]
fn the_longest_unseen_machine_is_forgotten_first() {
    let book = Book::memory("test");
    for i in 0..SEEN_MAX as u64 + 1 {
        let b = i.to_be_bytes();
        book.saw(
            Mac([2, 0, b[4], b[5], b[6], b[7]]),
            Seen {
                at: i,
                ..Seen::default()
            },
        );
    }
    assert_eq!(book.all_seen().len(), SEEN_MAX);
    assert!(book.seen(&Mac([2, 0, 0, 0, 0, 0])).is_none());
    assert!(book.seen(&Mac([2, 0, 0, 0, 0, 1])).is_some());
}
