//! The model-rules suite (validators, links, migrations) on the in-memory backend.

mod model_rules;

use netabase_store::backend::memory::MemoryBackend;

model_rules_suite!(|| Ok::<_, netabase_store::NetabaseError>(MemoryBackend::new()));

/// A record received from a peer meets the same validators as a local write.
#[cfg(feature = "libp2p")]
#[test]
fn inbound_records_meet_the_validators() -> model_rules::TestResult {
    use model_rules::schema::rules::{RulesDefinition, User};
    use netabase_store::kad::{DefinitionRecordExt, RecordError, validate_record};

    let user = |name: &str| User {
        id: 1,
        name: name.into(),
        email: "a@example.com".into(),
        age: 30,
        org: None,
    };
    let good = RulesDefinition::User(user("ada")).to_record()?;
    assert!(validate_record::<RulesDefinition>(&good, 1 << 20).is_ok());
    let bad = RulesDefinition::User(user("")).to_record()?;
    match validate_record::<RulesDefinition>(&bad, 1 << 20) {
        Err(RecordError::Invalid { model, source }) => {
            assert_eq!(model, "User");
            assert!(
                matches!(source, netabase_store::NetabaseError::Invalid(e) if e.field == Some("name"))
            );
        }
        other => return Err(format!("expected an invalid record, got {other:?}").into()),
    }
    Ok(())
}

/// A database whose links cross definitions, read without the Rust types: the stored
/// shape names the other definition's table as the target, and `verify` finds every
/// link index exact and every target present; a dangling one written past the pipeline
/// is found.
#[test]
fn cross_links_verify_without_the_types() -> model_rules::TestResult {
    use model_rules::schema::library::{Book, LibraryDefinition};
    use model_rules::schema::rules::{RulesDefinition, User};
    use netabase_store::backend::{Backend, WriteTxn};
    use netabase_store::codec::value::encode_value;
    use netabase_store::prelude::*;
    use netabase_store::typed::dynamic::DynamicStore;
    use std::sync::Arc;

    let memory = MemoryBackend::new();
    let shared = Arc::new(memory.clone());
    let rules: NetabaseStore<RulesDefinition, _> =
        NetabaseStore::from_shared_backend(shared.clone())?;
    let library: NetabaseStore<LibraryDefinition, _> = NetabaseStore::from_shared_backend(shared)?;
    rules.open_tree::<User>().put(User {
        id: 1,
        name: "ada".into(),
        email: "ada@example.com".into(),
        age: 30,
        org: None,
    })?;
    library.open_tree::<Book>().put(Book {
        id: 10,
        author: 1,
        publisher: None,
        reviewers: vec![1],
        borrower: None,
    })?;

    let dynamic = DynamicStore::open(memory.clone())?;
    let book = dynamic
        .models()
        .iter()
        .find(|m| m.table == "LibraryDefinition/Book")
        .ok_or("the book model is not described")?;
    let author = book
        .links
        .iter()
        .find(|l| l.field == "author")
        .ok_or("the author link is not described")?;
    assert_eq!(
        (author.target, author.target_table),
        ("User", "RulesDefinition/User")
    );
    let findings = dynamic.verify(&mut |_| {})?;
    assert!(findings.is_empty(), "{findings:?}");

    // A book written past the pipeline, linking to a user that does not exist.
    let stray = Book {
        id: 11,
        author: 9,
        publisher: None,
        reviewers: Vec::new(),
        borrower: None,
    };
    let txn = memory.begin_write()?;
    txn.put(
        "LibraryDefinition/Book",
        &11u64.to_key_bytes(),
        &encode_value("Book", 0, &stray)?,
    )?;
    let mut entry = 9u64.to_key_bytes();
    entry.extend(11u64.to_key_bytes());
    txn.put("LibraryDefinition/Book/author", &entry, &[])?;
    txn.commit()?;
    let findings = dynamic.verify(&mut |_| {})?;
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert!(
        findings[0].to_string().contains("author"),
        "{}",
        findings[0]
    );
    Ok(())
}
