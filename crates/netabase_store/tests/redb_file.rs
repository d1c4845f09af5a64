//! Behaviour specific to a database file: data survives reopening, and a file written in
//! another storage format is refused with a clear error instead of being misread.

mod conformance;

use conformance::schema::*;
use netabase_store::backend::redb::RedbBackend;
use netabase_store::backend::{Backend, WriteTxn};
use netabase_store::prelude::*;
use netabase_store::{FORMAT_VERSION, META_TABLE};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[test]
fn reopening_keeps_records_and_indexes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("db.redb");
    {
        let store = NetabaseStore::<TestDefinition, _>::redb(&path)?;
        let users = store.open_tree::<User>();
        users.put_many((1..=50).map(|i| user(i, &format!("{i}@x"), (i % 5) as u32)))?;
        users.remove(UserPrimaryKey(7))?;
    }
    let store = NetabaseStore::<TestDefinition, _>::redb(&path)?;
    let users = store.open_tree::<User>();
    assert_eq!(users.len()?, 49);
    assert_eq!(users.get(UserPrimaryKey(8))?, Some(user(8, "8@x", 3)));
    assert_eq!(
        users
            .get_by_secondary_key(UserSecondaryKeys::Age(UserAgeSecondaryKey(2)))?
            .len(),
        9
    );
    conformance::assert_user_indexes_exact(&store)?;
    // The unique index survived too: the email of a stored user is still taken.
    assert!(matches!(
        users.put(user(99, "8@x", 1)),
        Err(NetabaseError::UniqueViolation(_))
    ));
    Ok(())
}

#[test]
fn a_newer_storage_format_is_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("db.redb");
    drop(NetabaseStore::<TestDefinition, _>::redb(&path)?);
    {
        let backend = RedbBackend::create(&path)?;
        let txn = backend.begin_write()?;
        txn.put(META_TABLE, b"format", &(FORMAT_VERSION + 1).to_be_bytes())?;
        txn.commit()?;
    }
    match NetabaseStore::<TestDefinition, _>::redb(&path) {
        Err(NetabaseError::UnsupportedFormat(e)) => {
            assert_eq!(e.found, FORMAT_VERSION + 1);
            assert_eq!(e.supported, FORMAT_VERSION);
        }
        other => return Err(format!("expected UnsupportedFormat, got {other:?}").into()),
    }
    Ok(())
}

#[test]
fn a_value_of_a_newer_format_is_a_decode_error() -> TestResult {
    let store = NetabaseStore::<TestDefinition, _>::temp()?;
    let table = <User as NetabaseModelTrait<TestDefinition>>::INFO.table;
    {
        let txn = store.raw_backend().begin_write()?;
        txn.put(table, &5u64.to_key_bytes(), &[3, 0, 0, 1, 2, 3])?;
        txn.commit()?;
    }
    let err = store
        .open_tree::<User>()
        .get(UserPrimaryKey(5))
        .err()
        .ok_or("a value of format 3 was decoded")?;
    let message = err.to_string();
    assert!(message.contains(table), "{message}");
    assert!(message.contains("format version 3"), "{message}");
    Ok(())
}

#[test]
fn a_file_that_is_not_a_database_is_an_error() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("not-a-db.redb");
    std::fs::write(
        &path,
        b"this is not a redb file, just some text that is long enough",
    )?;
    let err = NetabaseStore::<TestDefinition, _>::redb(&path)
        .err()
        .ok_or("opened a text file as a database")?;
    assert!(
        matches!(
            err,
            NetabaseError::Backend(ref e) if e.backend == "redb" && e.path.is_some()
        ),
        "{err:?}"
    );
    Ok(())
}

/// Every error about a file names it: a directory, a file that is not a database, a
/// database another handle holds, a missing parent directory.
#[test]
fn open_errors_name_the_file() -> TestResult {
    let dir = tempfile::tempdir()?;
    let not_a_db = dir.path().join("notes.txt");
    std::fs::write(
        &not_a_db,
        b"some text that is certainly not a redb database file",
    )?;
    let held = dir.path().join("held.redb");
    let _holder = NetabaseStore::<TestDefinition, _>::redb(&held)?;
    let missing_parent = dir.path().join("no/such/dir/db.redb");
    for path in [dir.path().to_path_buf(), not_a_db, held, missing_parent] {
        let err = NetabaseStore::<TestDefinition, _>::redb(&path)
            .err()
            .ok_or_else(|| format!("opened {}", path.display()))?;
        let text = err.to_string();
        assert!(
            text.contains(&path.display().to_string()),
            "the error names the file: {text}"
        );
        assert!(text.starts_with("redb backend failed to open"), "{text}");
    }
    Ok(())
}

/// sled's open errors name the directory too.
#[cfg(feature = "sled")]
#[test]
fn sled_open_errors_name_the_directory() -> TestResult {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory")?;
    let err = NetabaseStore::<TestDefinition, _>::sled(&file)
        .err()
        .ok_or("opened a file as a sled directory")?;
    assert!(
        err.to_string().contains(&file.display().to_string()),
        "{err}"
    );
    Ok(())
}
