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
