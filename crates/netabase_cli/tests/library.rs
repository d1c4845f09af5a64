//! The `netabase` command line on a definition with validation rules, links between
//! models, a validator function and fields of nested types: import checks rules and
//! links and keeps link indexes, verify checks links, dump, export and import carry
//! nested values without the program's types.
#![allow(missing_docs)]

mod common;

use std::collections::BTreeMap;

use common::{TestResult, netabase, text};
use netabase_store::backend::{Backend, WriteTxn};
use netabase_store::prelude::*;

#[netabase_definition_module(LibraryDefinition, LibraryKeys)]
pub mod library {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;

    #[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
    pub struct Address {
        pub street: String,
        pub zip: Option<u32>,
    }

    #[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
    pub enum Status {
        Active,
        Suspended(String),
        Moved { to: Address, at: u64 },
        Pair(i32, i32),
    }

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(LibraryDefinition)]
    pub struct Author {
        #[primary_key]
        pub id: u64,
        #[validate(non_empty, len(max = 20))]
        pub name: String,
        #[validate(range(min = 1900, max = 2100))]
        pub born: i32,
        #[validate(range(min = 'A', max = 'Z'))]
        pub initial: char,
        pub home: Address,
        pub status: Status,
        pub history: Vec<Status>,
        pub scores: BTreeMap<String, u32>,
        pub by_year: BTreeMap<u16, Vec<String>>,
        pub pair: (Address, Option<Status>),
    }

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(LibraryDefinition)]
    pub struct Book {
        #[primary_key]
        pub isbn: String,
        #[link(Author)]
        pub author: u64,
        #[link(Author, on_delete = set_null)]
        pub editor: Option<u64>,
        #[validate(range(min = 0.0, max = 5.0))]
        pub rating: f64,
    }

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(LibraryDefinition, validate = check_review)]
    pub struct Review {
        #[primary_key]
        pub id: u64,
        #[validate(non_empty)]
        pub text: String,
    }

    pub fn check_review(review: &Review) -> Result<(), String> {
        if review.text.contains("spam") {
            Err("reviews may not advertise".into())
        } else {
            Ok(())
        }
    }
}
use library::*;

fn path(p: &std::path::Path) -> &str {
    p.to_str().unwrap_or_default()
}

fn author(id: u64) -> Author {
    Author {
        id,
        name: format!("author {id}"),
        born: 1950,
        initial: 'Q',
        home: Address {
            street: "Main".into(),
            zip: Some(1000),
        },
        status: match id % 4 {
            0 => Status::Active,
            1 => Status::Suspended("late".into()),
            2 => Status::Moved {
                to: Address {
                    street: "Elm".into(),
                    zip: None,
                },
                at: id * 10,
            },
            _ => Status::Pair(-1, 2),
        },
        history: vec![Status::Active, Status::Pair(3, -4)],
        scores: BTreeMap::from([("math".to_owned(), 3), ("art".to_owned(), 5)]),
        by_year: BTreeMap::from([(2001, vec!["a".into()]), (1999, vec![])]),
        pair: (
            Address {
                street: "Pair".into(),
                zip: Some(7),
            },
            id.is_multiple_of(2).then_some(Status::Active),
        ),
    }
}

fn book(isbn: &str, author: u64, editor: Option<u64>) -> Book {
    Book {
        isbn: isbn.into(),
        author,
        editor,
        rating: 4.5,
    }
}

/// A library with four authors, three books and a review.
fn fixture(dir: &std::path::Path) -> Result<std::path::PathBuf, NetabaseError> {
    let path = dir.join("library.redb");
    let store = LibraryDefinition::open_redb(&path)?;
    store.open_tree::<Author>().put_many((0..4).map(author))?;
    store.open_tree::<Book>().put_many([
        book("b1", 1, Some(2)),
        book("b2", 1, None),
        book("b3", 3, Some(3)),
    ])?;
    store.open_tree::<Review>().put(Review {
        id: 1,
        text: "good".into(),
    })?;
    Ok(path)
}

/// An empty database of the definition (its shape recorded).
fn empty(dir: &std::path::Path) -> Result<std::path::PathBuf, NetabaseError> {
    let path = dir.join("empty.redb");
    drop(LibraryDefinition::open_redb(&path)?);
    Ok(path)
}

const BOOK_LINE: &str = r#"{"model":"LibraryDefinition/Book","record":{"isbn":"b9","author":7,"editor":null,"rating":1.0}}"#;

fn author_line(id: u64, name: &str, born: i32) -> String {
    author_line_with(id, name, born, 'N')
}

fn author_line_with(id: u64, name: &str, born: i32, initial: char) -> String {
    format!(
        r#"{{"model":"LibraryDefinition/Author","record":{{"id":{id},"name":"{name}","born":{born},"initial":"{initial}","home":{{"street":"s","zip":null}},"status":"Active","history":[],"scores":{{}},"by_year":{{}},"pair":[{{"street":"p"}},null]}}}}"#
    )
}

#[test]
fn export_and_import_carry_nested_structs_enums_maps_and_tuples() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = fixture(dir.path())?;
    let out = netabase(&["export", path(&db), "--model", "Author"], b"")?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let exported = text(&out.stdout);
    let lines: Vec<serde_json::Value> = exported
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    // Each record is what serde_json makes of the Rust value.
    for (line, author) in lines.iter().zip((0..4).map(author)) {
        assert_eq!(line["record"], serde_json::to_value(&author)?);
    }
    assert_eq!(lines[0]["record"]["status"], "Active");
    assert_eq!(
        lines[2]["record"]["status"],
        serde_json::json!({"Moved": {"to": {"street": "Elm", "zip": null}, "at": 20}})
    );
    assert_eq!(
        lines[1]["record"]["by_year"],
        serde_json::json!({"1999": [], "2001": ["a"]})
    );
    let out = netabase(&["dump", path(&db), "--model", "Author"], b"")?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(r#"status: {"Suspended":"late"}"#),
        "{}",
        text(&out.stdout)
    );
    // Into an empty database, then read back by the program's types.
    let to = empty(dir.path())?;
    let out = netabase(&["import", path(&to)], exported.as_bytes())?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("imported 4 records"));
    let store = LibraryDefinition::open_redb(&to)?;
    let tree = store.open_tree::<Author>();
    for id in 0..4 {
        assert_eq!(tree.get(id)?, Some(author(id)));
    }
    Ok(())
}

#[test]
fn import_checks_the_field_rules_and_names_line_model_key_and_field() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = empty(dir.path())?;
    let cases = [
        (author_line(5, "", 1950), "field `name`: must not be empty"),
        (
            author_line(5, "a name far too long for it", 1950),
            "length 26 is above the maximum 20",
        ),
        (author_line(5, "ok", 1800), "1800 is below the minimum 1900"),
        (
            author_line_with(5, "ok", 1950, 'a'),
            "field `initial`: 'a' is above the maximum 'Z'",
        ),
    ];
    for (bad, reason) in cases {
        let input = format!("{}\n\n{bad}\n", author_line(4, "fine", 1990));
        let out = netabase(&["import", path(&db)], input.as_bytes())?;
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("line 3, record 2 (`LibraryDefinition/Author`, primary key 5)"),
            "{err}"
        );
        assert!(err.contains("Author"), "{err}");
        assert!(err.contains(reason), "{err}");
        assert!(err.contains("nothing was imported"), "{err}");
    }
    let store = LibraryDefinition::open_redb(&db)?;
    assert_eq!(
        store.open_tree::<Author>().len()?,
        0,
        "the good line was kept"
    );
    Ok(())
}

#[test]
fn import_resolves_links_in_any_order_and_keeps_the_link_index() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = empty(dir.path())?;
    // The book comes before its author.
    let input = format!("{BOOK_LINE}\n{}\n", author_line(7, "seven", 1990));
    let out = netabase(&["import", path(&db)], input.as_bytes())?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = netabase(&["verify", path(&db)], b"")?;
    assert!(out.status.success(), "{}", text(&out.stdout));
    let store = LibraryDefinition::open_redb(&db)?;
    let books: Vec<Book> = store.open_tree::<Author>().referrers::<Book>(7u64)?;
    let mut expected = book("b9", 7, None);
    expected.rating = 1.0;
    assert_eq!(books, vec![expected]);
    // The link is a real one: removing the author is refused (restrict).
    assert!(store.open_tree::<Author>().remove(7u64).is_err());
    Ok(())
}

#[test]
fn import_refuses_a_dangling_link_and_writes_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = empty(dir.path())?;
    let input = format!("{}\n{BOOK_LINE}\n", author_line(6, "six", 1990));
    let out = netabase(&["import", path(&db)], input.as_bytes())?;
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("line 2, record 2 (`LibraryDefinition/Book`, primary key \"b9\")"),
        "{err}"
    );
    assert!(
        err.contains("`Book.author` links to `Author` with primary key 7, which does not exist"),
        "{err}"
    );
    let store = LibraryDefinition::open_redb(&db)?;
    assert_eq!(store.open_tree::<Author>().len()?, 0);
    Ok(())
}

#[test]
fn a_model_with_a_validator_function_needs_skip_custom_validators() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = empty(dir.path())?;
    let input = br#"{"model":"Review","record":{"id":2,"text":"spam, but unchecked"}}"#;
    let out = netabase(&["import", path(&db)], input)?;
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("validator function"), "{err}");
    let out = netabase(&["import", "--help"], b"")?;
    assert!(text(&out.stdout).contains("--skip-custom-validators"));
    let out = netabase(&["import", "--skip-custom-validators", path(&db)], input)?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Field rules are still checked.
    let out = netabase(
        &["import", "--skip-custom-validators", path(&db)],
        br#"{"model":"Review","record":{"id":3,"text":""}}"#,
    )?;
    assert!(text(&out.stderr).contains("must not be empty"));
    let store = LibraryDefinition::open_redb(&db)?;
    assert_eq!(store.open_tree::<Review>().len()?, 1);
    Ok(())
}

#[test]
fn verify_reports_dangling_links_and_link_index_damage_and_repair_rebuilds() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = fixture(dir.path())?;
    let out = netabase(&["verify", path(&db)], b"")?;
    assert!(out.status.success(), "{}", text(&out.stdout));
    {
        // Damage past the typed layer: a missing link entry, a stray one.
        let store = LibraryDefinition::open_redb(&db)?;
        let txn = store.raw_backend().begin_write()?;
        let mut missing = 1u64.to_key_bytes();
        missing.extend("b2".to_string().to_key_bytes());
        assert!(txn.delete("LibraryDefinition/Book/author", &missing)?);
        let mut stray = 2u64.to_key_bytes();
        stray.extend("b3".to_string().to_key_bytes());
        txn.put("LibraryDefinition/Book/editor", &stray, &[])?;
        txn.commit()?;
    }
    let out = netabase(&["verify", path(&db)], b"")?;
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(report.contains("2 problems found"), "{report}");
    // The key is the target's key, then the referrer's: 1, "b2" / 2, "b3".
    assert!(
        report.contains(
            "problem: LibraryDefinition/Book/author at key 0x000000000000000162320001: a \
             record has no entry in this index"
        ),
        "{report}"
    );
    assert!(
        report.contains(
            "problem: LibraryDefinition/Book/editor at key 0x000000000000000262330001: the \
             index entry matches no record"
        ),
        "{report}"
    );
    let out = netabase(&["verify", "--repair", path(&db)], b"")?;
    let report = text(&out.stdout);
    assert!(out.status.success(), "{report}{}", text(&out.stderr));
    assert!(
        report.contains("no problems found after the repair"),
        "{report}"
    );
    let store = LibraryDefinition::open_redb(&db)?;
    assert_eq!(
        store.open_tree::<Author>().referrers::<Book>(1u64)?.len(),
        2
    );
    assert_eq!(
        store.open_tree::<Author>().referrers::<Book>(2u64)?.len(),
        1
    );
    Ok(())
}

#[test]
fn verify_reports_a_link_whose_target_is_gone_and_repair_cannot_hide_it() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = fixture(dir.path())?;
    {
        // The author of b3 removed past the typed layer (the link would refuse it).
        let store = LibraryDefinition::open_redb(&db)?;
        let txn = store.raw_backend().begin_write()?;
        assert!(txn.delete("LibraryDefinition/Author", &3u64.to_key_bytes())?);
        txn.commit()?;
    }
    let out = netabase(&["verify", path(&db)], b"")?;
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    for expected in [
        "`Book.author` (primary key \"b3\") links to `Author` with primary key 3, which does \
         not exist",
        "`Book.editor` (primary key \"b3\") links to `Author` with primary key 3, which does \
         not exist",
    ] {
        assert!(report.contains(expected), "{expected}\n{report}");
    }
    assert!(report.contains("2 problems found"), "{report}");
    let out = netabase(&["verify", "--repair", path(&db)], b"")?;
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains("problem after the repair: LibraryDefinition/Book at key"),
        "{report}"
    );
    Ok(())
}

#[test]
fn inspect_shows_rules_links_and_validator_functions() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = fixture(dir.path())?;
    let out = netabase(&["inspect", path(&db)], b"")?;
    let shown = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        shown.contains("validate non_empty, len(max = 20)"),
        "{shown}"
    );
    assert!(
        shown.contains("validate range(min = 1900, max = 2100)"),
        "{shown}"
    );
    assert!(
        shown.contains(
            "link to Author (on_delete set_null; LibraryDefinition/Book/editor, 2 entries)"
        ),
        "{shown}"
    );
    assert!(shown.contains("needs --skip-custom-validators"), "{shown}");
    Ok(())
}

#[test]
fn on_sled_import_finds_stored_link_targets_and_verify_checks_links() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("library.sled");
    {
        let store = LibraryDefinition::open_sled(&db)?;
        store.open_tree::<Author>().put_many((0..2).map(author))?;
    }
    let input = format!(
        "{}\n{}\n",
        r#"{"model":"Book","record":{"isbn":"s1","author":1,"editor":0,"rating":2.0}}"#,
        r#"{"model":"Book","record":{"isbn":"s2","author":5,"editor":null,"rating":2.0}}"#,
    );
    let out = netabase(&["import", path(&db)], input.as_bytes())?;
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("line 2, record 2 (`LibraryDefinition/Book`, primary key \"s2\")")
            && err.contains("`Book.author` links to `Author` with primary key 5"),
        "{err}"
    );
    let first = input.lines().next().unwrap_or_default();
    let out = netabase(&["import", path(&db)], first.as_bytes())?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = netabase(&["verify", path(&db)], b"")?;
    assert!(out.status.success(), "{}", text(&out.stdout));
    let store = LibraryDefinition::open_sled(&db)?;
    assert_eq!(
        store.open_tree::<Author>().referrers::<Book>(0u64)?.len(),
        1
    );
    Ok(())
}
