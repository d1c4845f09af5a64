//! The stored shape of version 2 read without the Rust types: field rules checked as
//! the models check them, links resolved and link indexes kept exactly as typed writes
//! keep them, nested structs, enums and maps decoded and re-encoded byte for byte, and
//! shapes of version 1 still read.
#![allow(missing_docs)]

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use netabase_store::backend::memory::MemoryBackend;
use netabase_store::backend::{Backend, Direction, RawRange, ReadTxn, WriteTxn};
use netabase_store::codec::dynamic::Value;
use netabase_store::prelude::*;
use netabase_store::typed::dynamic::{DynamicStore, ImportOptions, LinkArity};

#[netabase_definition_module(LibDefinition, LibKeys)]
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

    #[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
    pub struct Meters(pub f64);

    #[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
    pub struct Node {
        pub label: String,
        pub children: Vec<Node>,
    }

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(LibDefinition)]
    pub struct Author {
        #[primary_key]
        pub id: u64,
        #[validate(non_empty, len(max = 20))]
        pub name: String,
        #[validate(range(min = 1900, max = 2100))]
        pub born: i32,
        pub home: Address,
        pub status: Status,
        pub history: Vec<Status>,
        pub previous: Option<Address>,
        pub height: Meters,
        pub scores: BTreeMap<String, u32>,
        pub by_year: BTreeMap<u16, Vec<String>>,
        pub pair: (Address, Status),
        pub tree: Node,
    }

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(LibDefinition)]
    pub struct Book {
        #[primary_key]
        pub isbn: String,
        #[link(Author)]
        pub author: u64,
        #[link(Author, on_delete = set_null)]
        pub editor: Option<u64>,
        #[link(Book)]
        pub sequel_of: Vec<String>,
        #[validate(range(min = 0.0, max = 5.0))]
        pub rating: f64,
    }

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(LibDefinition, validate = check_review)]
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

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn author(id: u64) -> Author {
    Author {
        id,
        name: format!("author {id}"),
        born: 1950 + i32::try_from(id).unwrap_or(0),
        home: Address {
            street: "Main".into(),
            zip: Some(1000 + u32::try_from(id).unwrap_or(0)),
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
        previous: id.is_multiple_of(2).then(|| Address {
            street: "Old".into(),
            zip: None,
        }),
        height: Meters(1.5 + id as f64),
        scores: BTreeMap::from([("math".to_owned(), 3), ("art".to_owned(), 5)]),
        by_year: BTreeMap::from([(2001, vec!["a".into()]), (1999, vec![])]),
        pair: (
            Address {
                street: "Pair".into(),
                zip: Some(7),
            },
            Status::Suspended("x".into()),
        ),
        tree: Node {
            label: "root".into(),
            children: vec![Node {
                label: "leaf".into(),
                children: vec![],
            }],
        },
    }
}

fn book(isbn: &str, author: u64, editor: Option<u64>, sequel_of: &[&str]) -> Book {
    Book {
        isbn: isbn.into(),
        author,
        editor,
        sequel_of: sequel_of.iter().map(|s| (*s).to_owned()).collect(),
        rating: 4.5,
    }
}

/// A table's entries, key and value.
type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Every entry of `table`.
fn entries(backend: &MemoryBackend, table: &str) -> Result<Entries, NetabaseError> {
    let txn = backend.begin_read()?;
    let mut out = Vec::new();
    txn.for_each_in(table, RawRange::all(), Direction::Forward, &mut |k, v| {
        out.push((k.to_vec(), v.to_vec()));
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(out)
}

/// Every record of `store` as `(model table, value)`, in table and key order.
fn decoded(store: &DynamicStore<MemoryBackend>) -> Result<Vec<(String, Value)>, NetabaseError> {
    let mut out = Vec::new();
    for model in store.models() {
        store.for_each(model, &mut |_, value| {
            out.push((model.table.clone(), value?));
            Ok(ControlFlow::Continue(()))
        })?;
    }
    Ok(out)
}

/// Imports `records` into `store` (custom validators skipped), returning how many.
fn import_all(
    store: &DynamicStore<MemoryBackend>,
    records: Vec<(String, Value)>,
) -> Result<u64, Box<dyn std::error::Error>> {
    Ok(store
        .import(
            &mut records.into_iter().map(Ok),
            &ImportOptions::new().skip_custom_validators(true),
            &mut |_| {},
        )
        .map_err(|e| e.to_string())?)
}

/// A store written by the program (typed), and an empty one with the same shape.
fn typed_and_empty() -> Result<(MemoryBackend, MemoryBackend), NetabaseError> {
    let typed = MemoryBackend::new();
    let store = NetabaseStore::<LibDefinition, _>::from_backend(typed.clone())?;
    store.open_tree::<Author>().put_many((0..6).map(author))?;
    store.open_tree::<Book>().put_many([
        book("b1", 1, Some(2), &[]),
        book("b2", 1, None, &["b1", "b1"]),
        book("b3", 3, Some(3), &["b1", "b2"]),
    ])?;
    store.open_tree::<Review>().put(Review {
        id: 1,
        text: "good".into(),
    })?;
    let empty = MemoryBackend::new();
    drop(NetabaseStore::<LibDefinition, _>::from_backend(
        empty.clone(),
    )?);
    Ok((typed, empty))
}

#[test]
fn the_shape_describes_rules_links_and_custom_validators() -> TestResult {
    let (typed, _) = typed_and_empty()?;
    let store = DynamicStore::open(typed)?;
    let author = store.model("Author").ok_or("no Author")?;
    assert!(author.rules_described);
    assert!(!author.custom_validator);
    let rules: Vec<&str> = author.rules.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(rules, ["name", "name", "born"]);
    let book = store.model("Book").ok_or("no Book")?;
    let links: Vec<(&str, &str, LinkArity)> = book
        .links
        .iter()
        .map(|l| {
            let arity = l.holds.as_ref().map(|(a, _)| *a).unwrap_or(LinkArity::One);
            (l.field, l.target, arity)
        })
        .collect();
    assert_eq!(
        links,
        [
            ("author", "Author", LinkArity::One),
            ("editor", "Author", LinkArity::Optional),
            ("sequel_of", "Book", LinkArity::Many),
        ]
    );
    assert!(book.links.iter().all(|l| l.holds.is_ok()));
    assert_eq!(
        book.links[1].on_delete,
        netabase_store::rules::OnDelete::SetNull
    );
    assert!(store.model("Review").ok_or("no Review")?.custom_validator);
    Ok(())
}

#[test]
fn nested_structs_enums_maps_and_tuples_reencode_to_the_stored_bytes() -> TestResult {
    let (typed, _) = typed_and_empty()?;
    let store = DynamicStore::open(typed.clone())?;
    let model = store.model("Author").ok_or("no Author")?;
    assert_eq!(model.undescribed(), None);
    let stored = entries(&typed, "LibDefinition/Author")?;
    assert_eq!(stored.len(), 6);
    for (pk, bytes) in &stored {
        let value = model.decode(pk, bytes)?;
        let encoded = model.encode(&value)?;
        assert_eq!(&encoded.value, bytes, "{value:?}");
        assert_eq!(&encoded.pk, pk);
    }
    let (pk, bytes) = &stored[2];
    let value = model.decode(pk, bytes)?;
    assert_eq!(
        value.field("status"),
        Some(&Value::Variant(
            "Moved".into(),
            Box::new(Value::Record(vec![
                (
                    "to".into(),
                    Value::Record(vec![
                        ("street".into(), Value::Text("Elm".into())),
                        ("zip".into(), Value::None),
                    ])
                ),
                ("at".into(), Value::UInt(20)),
            ]))
        ))
    );
    assert_eq!(value.field("height"), Some(&Value::Float(3.5)));
    assert_eq!(
        value.field("scores"),
        Some(&Value::Map(vec![
            (Value::Text("art".into()), Value::UInt(5)),
            (Value::Text("math".into()), Value::UInt(3)),
        ]))
    );
    Ok(())
}

#[test]
fn an_import_writes_what_typed_puts_write_indexes_and_link_indexes_included() -> TestResult {
    let (typed, empty) = typed_and_empty()?;
    let from = DynamicStore::open(typed.clone())?;
    let mut records = decoded(&from)?;
    // Books before their authors, and a sequel before the book it follows: links
    // resolve against the whole input.
    records.reverse();
    let into = DynamicStore::open(empty.clone())?;
    assert_eq!(import_all(&into, records)?, 10);
    for table in [
        "LibDefinition/Author",
        "LibDefinition/Book",
        "LibDefinition/Book/author",
        "LibDefinition/Book/editor",
        "LibDefinition/Book/sequel_of",
        "LibDefinition/Review",
    ] {
        assert_eq!(entries(&typed, table)?, entries(&empty, table)?, "{table}");
    }
    assert_eq!(entries(&empty, "LibDefinition/Book/sequel_of")?.len(), 3);
    assert!(into.verify(&mut |_| {})?.is_empty());
    // The typed API reads the imported records and follows their links.
    let store = NetabaseStore::<LibDefinition, _>::from_backend(empty)?;
    let referrers: Vec<Book> = store.open_tree::<Author>().referrers::<Book>(1u64)?;
    assert_eq!(referrers.len(), 2);
    Ok(())
}

#[test]
fn an_import_replacing_a_record_moves_its_link_entries() -> TestResult {
    let (typed, _) = typed_and_empty()?;
    let store = DynamicStore::open(typed.clone())?;
    let model = store.model("Book").ok_or("no Book")?;
    let mut record = Value::Record(Vec::new());
    store.for_each(model, &mut |_, value| {
        let value = value?;
        if value.field("isbn") == Some(&Value::Text("b1".into())) {
            record = value;
        }
        Ok(ControlFlow::Continue(()))
    })?;
    let Value::Record(fields) = &mut record else {
        return Err("not a record".into());
    };
    for (name, value) in fields.iter_mut() {
        if name == "author" {
            *value = Value::UInt(4);
        }
    }
    store
        .import(
            &mut std::iter::once(Ok(("Book".to_owned(), record))),
            &ImportOptions::new(),
            &mut |_| {},
        )
        .map_err(|e| e.to_string())?;
    let typed_store = NetabaseStore::<LibDefinition, _>::from_backend(typed)?;
    let authors = typed_store.open_tree::<Author>();
    assert_eq!(authors.referrers::<Book>(4u64)?.len(), 1);
    assert_eq!(authors.referrers::<Book>(1u64)?.len(), 1);
    Ok(())
}

/// The error a typed put of `model` gives, and the one an import of the same record
/// gives.
fn both_errors<M>(model: M, name: &str) -> Result<(String, String), Box<dyn std::error::Error>>
where
    M: NetabaseModelTrait<LibDefinition>,
{
    let (typed, empty) = typed_and_empty()?;
    let store = NetabaseStore::<LibDefinition, _>::from_backend(typed.clone())?;
    let typed_error = match store.open_tree::<M>().put(model.clone()) {
        Err(e) => e.to_string(),
        Ok(_) => return Err("the typed put was accepted".into()),
    };
    // The record as the dynamic store reads it: encode it with the typed codec and
    // decode it with the shape.
    let bytes = LibDefinition::encode_value(&model.clone().into_definition())?;
    let pk = model.primary_key().to_key_bytes();
    let dynamic = DynamicStore::open(empty.clone())?;
    let value = dynamic.model(name).ok_or("no model")?.decode(&pk, &bytes)?;
    let import_error = match dynamic.import(
        &mut std::iter::once(Ok((name.to_owned(), value))),
        &ImportOptions::new(),
        &mut |_| {},
    ) {
        Err(e) => e.error.to_string(),
        Ok(_) => return Err("the import was accepted".into()),
    };
    assert!(entries(&empty, &format!("LibDefinition/{name}"))?.is_empty());
    Ok((typed_error, import_error))
}

#[test]
fn an_import_refuses_what_the_models_own_rules_refuse_with_the_same_words() -> TestResult {
    let mut empty_name = author(7);
    empty_name.name = String::new();
    let mut long_name = author(7);
    long_name.name = "x".repeat(21);
    let mut too_old = author(7);
    too_old.born = 1800;
    for bad in [empty_name, long_name, too_old] {
        let (typed, import) = both_errors(bad, "Author")?;
        assert_eq!(typed, import);
        assert!(
            typed.contains("`Author`") || typed.contains("Author"),
            "{typed}"
        );
    }
    let mut rated = book("b9", 1, None, &[]);
    rated.rating = 7.5;
    let (typed, import) = both_errors(rated, "Book")?;
    assert_eq!(typed, import);
    assert!(import.contains("7.5 is above the maximum 5.0"), "{import}");
    Ok(())
}

#[test]
fn an_import_refuses_a_dangling_link_naming_model_field_and_key() -> TestResult {
    let (typed, empty) = typed_and_empty()?;
    let store = NetabaseStore::<LibDefinition, _>::from_backend(typed)?;
    let dangling = book("b9", 42, None, &[]);
    let typed_error = match store.open_tree::<Book>().put(dangling.clone()) {
        Err(e) => e.to_string(),
        Ok(_) => return Err("accepted".into()),
    };
    let bytes = LibDefinition::encode_value(&dangling.clone().into_definition())?;
    let pk = dangling.primary_key().to_key_bytes();
    let dynamic = DynamicStore::open(empty.clone())?;
    let value = dynamic
        .model("Book")
        .ok_or("no Book")?
        .decode(&pk, &bytes)?;
    let err = match dynamic.import(
        &mut std::iter::once(Ok(("Book".to_owned(), value))),
        &ImportOptions::new(),
        &mut |_| {},
    ) {
        Err(e) => e,
        Ok(_) => return Err("accepted".into()),
    };
    assert_eq!(err.error.to_string(), typed_error);
    assert_eq!(err.record, Some(1));
    assert_eq!(err.key.as_deref(), Some("\"b9\""));
    assert!(
        err.to_string()
            .contains("`Book.author` links to `Author` with primary key 42, which does not exist"),
        "{err}"
    );
    assert!(entries(&empty, "LibDefinition/Book")?.is_empty());
    Ok(())
}

#[test]
fn a_model_with_a_validator_function_is_refused_unless_skipped() -> TestResult {
    let (_, empty) = typed_and_empty()?;
    let dynamic = DynamicStore::open(empty.clone())?;
    let review = |text: &str| {
        Value::Record(vec![
            ("id".into(), Value::UInt(5)),
            ("text".into(), Value::Text(text.into())),
        ])
    };
    let err = match dynamic.import(
        &mut std::iter::once(Ok(("Review".to_owned(), review("fine")))),
        &ImportOptions::new(),
        &mut |_| {},
    ) {
        Err(e) => e.to_string(),
        Ok(_) => return Err("accepted".into()),
    };
    assert!(err.contains("validator function"), "{err}");
    assert!(err.contains("LibDefinition/Review"), "{err}");
    // Skipped knowingly, the field rules still hold.
    let skip = ImportOptions::new().skip_custom_validators(true);
    let err = match dynamic.import(
        &mut std::iter::once(Ok(("Review".to_owned(), review("")))),
        &skip,
        &mut |_| {},
    ) {
        Err(e) => e.to_string(),
        Ok(_) => return Err("accepted".into()),
    };
    assert!(err.contains("must not be empty"), "{err}");
    dynamic
        .import(
            &mut std::iter::once(Ok(("Review".to_owned(), review("fine")))),
            &skip,
            &mut |_| {},
        )
        .map_err(|e| e.to_string())?;
    assert_eq!(entries(&empty, "LibDefinition/Review")?.len(), 1);
    Ok(())
}

#[test]
fn a_shape_of_version_1_is_still_read_and_import_explains_why_it_refuses() -> TestResult {
    let backend = MemoryBackend::new();
    {
        let txn = backend.begin_write()?;
        txn.put(
            "__netabase/meta",
            b"shape/OldDefinition",
            b"netabase shape 1\ndefinition OldDefinition\nmodel Item v0 table OldDefinition/Item\n  field id u64 primary\n  field name String\n",
        )?;
        let mut value = vec![1u8, 0, 0];
        value.extend(postcard::to_allocvec(&(7u64, "seven".to_owned()))?);
        txn.put("OldDefinition/Item", &7u64.to_key_bytes(), &value)?;
        txn.commit()?;
    }
    let store = DynamicStore::open(backend)?;
    let model = store.model("Item").ok_or("no Item")?;
    assert!(!model.rules_described);
    let mut seen = Vec::new();
    store.for_each(model, &mut |_, v| {
        seen.push(v?);
        Ok(ControlFlow::Continue(()))
    })?;
    assert_eq!(seen[0].field("name"), Some(&Value::Text("seven".into())));
    assert!(store.verify(&mut |_| {})?.is_empty());
    let err = match store.import(
        &mut std::iter::once(Ok(("Item".to_owned(), seen[0].clone()))),
        &ImportOptions::new(),
        &mut |_| {},
    ) {
        Err(e) => e.to_string(),
        Ok(_) => return Err("accepted".into()),
    };
    assert!(err.contains("older version"), "{err}");
    Ok(())
}

/// A type declared outside the definition module: out of the macros' sight.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
pub struct Outside {
    pub x: u8,
}

/// A type that is not `Serialize`, stored through `#[serde(with = ..)]`.
#[derive(Clone, Debug, PartialEq, PartialOrd)]
pub struct Celsius(pub i32);

pub mod celsius {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(c: &super::Celsius, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i32(c.0)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<super::Celsius, D::Error> {
        i32::deserialize(d).map(super::Celsius)
    }
}

#[netabase_definition_module(OddDefinition, OddKeys)]
pub mod odd {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[serde(tag = "kind")]
    pub enum Tagged {
        A { x: u8 },
    }

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(OddDefinition)]
    pub struct WithOutside {
        #[primary_key]
        pub id: u64,
        pub outside: super::Outside,
        // A range rule on a field whose type is not `Serialize` still compiles.
        #[serde(with = "super::celsius")]
        #[validate(range(min = super::Celsius(-50)))]
        pub temp: super::Celsius,
    }

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(OddDefinition)]
    pub struct WithTagged {
        #[primary_key]
        pub id: u64,
        pub tagged: Vec<Tagged>,
    }
}

#[test]
fn types_the_shape_cannot_describe_are_named_not_guessed() -> TestResult {
    let backend = MemoryBackend::new();
    let typed = NetabaseStore::<odd::OddDefinition, _>::from_backend(backend.clone())?;
    let cold = odd::WithOutside {
        id: 1,
        outside: Outside { x: 1 },
        temp: Celsius(-60),
    };
    assert!(typed.open_tree::<odd::WithOutside>().put(cold).is_err());
    drop(typed);
    let store = DynamicStore::open(backend)?;
    let outside = store
        .model("WithOutside")
        .and_then(|m| m.undescribed())
        .unwrap_or_default();
    assert!(
        outside.contains("field `WithOutside.outside`")
            && outside.contains("`Outside` is not a type a stored shape describes")
            && outside.contains("declared elsewhere"),
        "{outside}"
    );
    let tagged = store
        .model("WithTagged")
        .and_then(|m| m.undescribed())
        .unwrap_or_default();
    assert!(
        tagged.contains("the type `Tagged` is not described") && tagged.contains("#[serde(..)]"),
        "{tagged}"
    );
    Ok(())
}

/// An import into a database with sync on keeps its sync metadata as the program's own
/// writes do: the imported records get version stamps of the database's writer id, the
/// fingerprint tree stays consistent, and a replica reconciles to the same records.
#[test]
fn an_import_into_a_synced_database_keeps_its_sync_metadata() -> TestResult {
    use netabase_store::sync::{self, SyncedTree};
    use netabase_store::typed::meta::OpenOptions;

    let open = |backend: &MemoryBackend| {
        NetabaseStore::<LibDefinition, _>::from_backend_with(
            backend.clone(),
            OpenOptions::default().sync_all(),
        )
    };
    let backend = MemoryBackend::new();
    let replica = open(&MemoryBackend::new())?;
    {
        let store = open(&backend)?;
        store.open_tree::<Author>().put_many((0..3).map(author))?;
        sync::reconcile(&store, &replica)?;
    }
    // Authors 0..6 (0..3 written again, unchanged), three books, a review.
    let (typed, _) = typed_and_empty()?;
    let records = decoded(&DynamicStore::open(typed)?)?;
    assert_eq!(
        import_all(&DynamicStore::open(backend.clone())?, records)?,
        10
    );

    let store = open(&backend)?;
    sync::check(&store)?;
    let writer = sync::writer_id(&store).ok_or("no writer id")?;
    for id in [0u64, 5] {
        let version = store
            .open_tree::<Author>()
            .version(id)?
            .ok_or("an imported record has no version")?;
        assert_eq!(version.stamp.writer, writer);
        assert!(!version.tombstone);
    }
    let report = sync::reconcile(&store, &replica)?;
    // Every imported record is a new version, the three rewritten authors included.
    assert_eq!(report.a.records_sent, 10, "{report:?}");
    assert_eq!(report.b.records_sent, 0, "{report:?}");
    assert_eq!(
        replica
            .open_tree::<Book>()
            .get(BookPrimaryKey("b3".into()))?,
        store.open_tree::<Book>().get(BookPrimaryKey("b3".into()))?
    );
    assert_eq!(replica.open_tree::<Author>().len()?, 6);
    assert_eq!(
        store.open_tree::<Author>().fingerprint::<u64>(..)?,
        replica.open_tree::<Author>().fingerprint::<u64>(..)?
    );
    let again = sync::reconcile(&store, &replica)?;
    assert_eq!(again.a.records_sent + again.b.records_sent, 0, "{again:?}");

    // `verify` checks the sync metadata too: sound after the import, and a record
    // written past it is found.
    drop(store);
    let dynamic = DynamicStore::open(backend.clone())?;
    let findings = dynamic.verify(&mut |_| {})?;
    assert!(findings.is_empty(), "{findings:?}");
    let txn = backend.begin_write()?;
    let value = txn
        .get("LibDefinition/Author", &AuthorPrimaryKey(1).to_key_bytes())?
        .ok_or("no author 1")?;
    txn.put(
        "LibDefinition/Author",
        &AuthorPrimaryKey(2).to_key_bytes(),
        &value,
    )?;
    txn.commit()?;
    let findings = dynamic.verify(&mut |_| {})?;
    assert!(
        findings.iter().any(|f| f.table == "LibDefinition/Author"
            && f.key == AuthorPrimaryKey(2).to_key_bytes()
            && f.problem
                .contains("not the version its sync entry fingerprints")),
        "{findings:?}"
    );
    Ok(())
}
