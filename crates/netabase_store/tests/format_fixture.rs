//! The format contract across releases: a database file written by version 1 of a
//! schema (`tests/data/people_v1.redb`, committed) is opened and read by versions 2 and
//! 3 of that schema. The file is never rewritten by the tests (they work on a copy);
//! `generate_people_v1_fixture` made it (see `tests/data/README.md`).

mod model_rules;

use std::path::PathBuf;

use model_rules::schema::{v1, v2, v3};
use netabase_store::prelude::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const FIXTURE: &str = "tests/data/people_v1.redb";

fn fixture_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(FIXTURE)
}

/// The records of the fixture, as version 1 wrote them.
fn v1_people() -> Vec<v1::Person> {
    (1..=20)
        .map(|id| v1::Person {
            id,
            name: format!("Person{id} Family{}", id % 3),
            age: 20 + (id as u32 % 7),
        })
        .collect()
}

/// A copy of the fixture in a temporary directory.
fn copy() -> Result<(tempfile::TempDir, PathBuf), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("people.redb");
    std::fs::copy(fixture_path(), &path)?;
    Ok((dir, path))
}

/// Writes the fixture. Run once with version 1 of the schema:
/// `cargo test -p netabase_store --test format_fixture -- --ignored generate`.
#[test]
#[ignore = "writes the committed fixture"]
fn generate_people_v1_fixture() -> TestResult {
    let path = fixture_path();
    let _ = std::fs::remove_file(&path);
    let store = NetabaseStore::<v1::PeopleDefinition, _>::redb(&path)?;
    store.open_tree::<v1::Person>().put_many(v1_people())?;
    Ok(())
}

#[test]
fn version_1_reads_its_own_fixture() -> TestResult {
    let (_dir, path) = copy()?;
    let store = NetabaseStore::<v1::PeopleDefinition, _>::redb(&path)?;
    let people = store.open_tree::<v1::Person>();
    let stored: Vec<v1::Person> = people
        .iter()
        .map(|r| r.map(|(_, p)| p))
        .collect::<Result<_, _>>()?;
    assert_eq!(stored, v1_people());
    assert_eq!(people.outdated()?, 0);
    Ok(())
}

#[test]
fn version_2_reads_and_migrates_the_v1_fixture() -> TestResult {
    let (_dir, path) = copy()?;
    {
        let store = NetabaseStore::<v2::PeopleDefinition, _>::redb(&path)?;
        let people = store.open_tree::<v2::Person>();
        assert_eq!(people.outdated()?, 20);
        for old in v1_people() {
            let p = people.get(old.id)?.ok_or("missing")?;
            assert_eq!(format!("{} {}", p.first, p.last), old.name);
            assert_eq!(p.age, old.age);
        }
        assert_eq!(people.migrate(|_| {})?, 20);
    }
    // Reopened: every value is at version 2, and reads the same.
    let store = NetabaseStore::<v2::PeopleDefinition, _>::redb(&path)?;
    let people = store.open_tree::<v2::Person>();
    assert_eq!(people.outdated()?, 0);
    assert_eq!(
        people
            .get_by_secondary_key(v2::PersonAgeSecondaryKey(21))?
            .len(),
        v1_people().iter().filter(|p| p.age == 21).count()
    );
    Ok(())
}

#[test]
fn version_3_reads_and_migrates_the_v1_fixture() -> TestResult {
    let (_dir, path) = copy()?;
    let store = NetabaseStore::<v3::PeopleDefinition, _>::redb(&path)?;
    let people = store.open_tree::<v3::Person>();
    for old in v1_people() {
        let p = people.get(old.id)?.ok_or("missing")?;
        assert_eq!(format!("{} {}", p.first, p.last), old.name);
        assert_eq!(p.age, old.age * 12);
        assert_eq!(p.initials, "PF");
    }
    // The index of the upgraded `age` (now months) was rebuilt at open.
    let months = 21 * 12;
    let expected = v1_people().iter().filter(|p| p.age == 21).count();
    assert_eq!(
        people
            .get_by_secondary_key(v3::PersonAgeSecondaryKey(months))?
            .len(),
        expected
    );
    assert_eq!(store.migrate(|_| {})?, 20);
    assert_eq!(people.outdated()?, 0);
    assert_eq!(
        people
            .get_by_secondary_key(v3::PersonAgeSecondaryKey(months))?
            .len(),
        expected
    );
    Ok(())
}
