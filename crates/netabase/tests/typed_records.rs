//! The typed bridge between models and DHT records, without a network.

mod common;

use common::*;
use libp2p::kad::RecordKey;
use netabase_store::kad::{
    DefinitionRecordExt, RecordError, parse_record_key, record_key, record_key_of, validate_record,
};

#[test]
fn the_record_key_is_computable_from_the_primary_key_alone() -> TestResult {
    let record = BlogDefinition::User(user(7)).to_record()?;
    assert_eq!(
        record.key,
        record_key::<BlogDefinition, User>(&UserPrimaryKey(7))
    );
    let keys = BlogKeys::User(UserKey::Primary(UserPrimaryKey(7)));
    assert_eq!(
        record_key_of::<BlogDefinition>(&keys),
        Some(record.key.clone())
    );
    assert_ne!(
        record.key,
        record_key::<BlogDefinition, Post>(&PostPrimaryKey(7))
    );
    let parts = parse_record_key(&record.key)?;
    assert_eq!(parts.definition, "BlogDefinition");
    assert_eq!(parts.model, "User");
    Ok(())
}

#[test]
fn record_keys_name_the_model_so_reordering_models_keeps_them() -> TestResult {
    use netabase_store::codec::key::KeyCodec;
    // The layout is (definition name, model name, primary key bytes): no position.
    let mut primary = Vec::new();
    UserPrimaryKey(7).encode_key(&mut primary);
    let expected = (
        "BlogDefinition".to_owned(),
        "User".to_owned(),
        primary.clone(),
    );
    let key = record_key::<BlogDefinition, User>(&UserPrimaryKey(7));
    assert_eq!(key.to_vec(), expected.to_key_bytes());

    // A key naming a model the definition does not have is refused.
    let unknown = ("BlogDefinition".to_owned(), "Usr".to_owned(), primary);
    let mut record = BlogDefinition::User(user(7)).to_record()?;
    record.key = RecordKey::from(unknown.to_key_bytes());
    assert!(matches!(
        BlogDefinition::from_record(&record),
        Err(RecordError::UnknownModel { model, .. }) if model == "Usr"
    ));
    Ok(())
}

#[test]
fn records_round_trip_and_bad_ones_are_refused() -> TestResult {
    let record = BlogDefinition::User(user(7)).to_record()?;
    assert_eq!(record.publisher, None);
    let back = BlogDefinition::from_record(&record)?;
    assert!(matches!(back, BlogDefinition::User(u) if u == user(7)));

    let mut wrong_key = record.clone();
    wrong_key.key = record_key::<BlogDefinition, User>(&UserPrimaryKey(8));
    assert!(matches!(
        BlogDefinition::from_record(&wrong_key),
        Err(RecordError::KeyMismatch { model: "User" })
    ));

    let mut garbage = record.clone();
    garbage.value = vec![9, 9];
    assert!(matches!(
        BlogDefinition::from_record(&garbage),
        Err(RecordError::UndecodableValue { .. })
    ));

    let mut foreign = record.clone();
    foreign.key = RecordKey::new(&b"not a netabase key");
    assert!(matches!(
        BlogDefinition::from_record(&foreign),
        Err(RecordError::MalformedKey(_))
    ));

    assert!(matches!(
        validate_record::<BlogDefinition>(&record, 4),
        Err(RecordError::ValueTooLarge { max: 4, .. })
    ));
    Ok(())
}

#[test]
fn a_value_of_another_model_that_happens_to_decode_is_refused() -> TestResult {
    // A `User`'s bytes decode as a `Post` (id, string, varint) with bytes left over.
    let mut record = BlogDefinition::User(user(101)).to_record()?;
    record.key = record_key::<BlogDefinition, Post>(&PostPrimaryKey(101));
    assert!(matches!(
        BlogDefinition::from_record(&record),
        Err(RecordError::NonCanonicalValue { model: "Post", .. })
    ));
    Ok(())
}
