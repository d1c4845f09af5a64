//! Compression and encryption at rest: values are sealed on disk, read back whatever
//! transform they were written with, and a wrong key, a missing key, a tampered or a
//! moved value is refused with an error naming the table and key.

use netabase_store::backend::redb::RedbBackend;
use netabase_store::backend::transform::{
    Compression, EncryptionKey, Transformed, Transforms, ValueTransform,
};
use netabase_store::backend::{Backend, ReadTxn, WriteTxn};
use netabase_store::prelude::*;
use netabase_store::{TransformError, TransformProblem};

/// The models of the tests.
#[netabase_definition_module(VaultDefinition, VaultKeys)]
pub mod vault {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    /// A secret note.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(VaultDefinition)]
    pub struct Secret {
        /// Its id.
        #[primary_key]
        pub id: u64,
        /// Who owns it.
        #[secondary_key]
        pub owner: String,
        /// The secret text.
        pub text: String,
    }

    /// A public note.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(VaultDefinition)]
    pub struct Public {
        /// Its id.
        #[primary_key]
        pub id: u64,
        /// Its text.
        pub text: String,
    }
}
use vault::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;
type Store = NetabaseStore<VaultDefinition, Transformed<RedbBackend>>;

const SECRET_TABLE: &str = "VaultDefinition/Secret";

fn key(byte: u8) -> EncryptionKey {
    EncryptionKey::new([byte; 32])
}

fn secret(id: u64) -> Secret {
    Secret {
        id,
        owner: format!("owner{}", id % 3),
        text: format!("the launch code is {id} {}", "repeat ".repeat(20)),
    }
}

fn open(path: &std::path::Path, transforms: Transforms) -> Result<Store, NetabaseError> {
    NetabaseStore::from_backend(Transformed::new(RedbBackend::create(path)?, transforms)?)
}

fn raw_value(store: &Store, table: &str, id: u64) -> Result<Vec<u8>, NetabaseError> {
    let txn = store.raw_backend().inner().begin_read()?;
    Ok(txn.get(table, &id.to_key_bytes())?.unwrap_or_default())
}

fn transform_error(e: NetabaseError) -> Option<TransformError> {
    match e {
        NetabaseError::Transform(t) => Some(*t),
        _ => None,
    }
}

fn fill(store: &Store, n: u64) -> Result<(), NetabaseError> {
    store.open_tree::<Secret>().put_many((0..n).map(secret))
}

#[test]
fn every_transform_round_trips_and_hides_the_plaintext() -> TestResult {
    let transforms = [
        Transforms::new().compression(Compression::Lz4),
        Transforms::new().compression(Compression::Zstd(3)),
        Transforms::new().encryption(key(1)),
        Transforms::new()
            .compression(Compression::Zstd(3))
            .encryption(key(1)),
    ];
    for (i, t) in transforms.into_iter().enumerate() {
        let dir = tempfile::tempdir()?;
        let store = open(&dir.path().join("v.redb"), t)?;
        fill(&store, 30)?;
        let tree = store.open_tree::<Secret>();
        for id in 0..30 {
            assert_eq!(tree.get(id)?, Some(secret(id)), "transform {i}");
        }
        // Indexes and ranges still work: keys are untouched.
        assert_eq!(
            tree.get_by_secondary_key(SecretOwnerSecondaryKey("owner1".into()))?
                .len(),
            10
        );
        assert_eq!(tree.range(5..8).count(), 3);
        let raw = raw_value(&store, SECRET_TABLE, 7)?;
        assert_eq!(raw[0], 2, "transform {i}: not sealed");
        let plain = postcard::to_allocvec(&secret(7))?;
        if i < 2 {
            assert!(raw.len() < plain.len() / 2, "transform {i}: not compressed");
        } else {
            assert!(
                !raw.windows(6).any(|w| w == b"launch"),
                "transform {i}: the plaintext is visible"
            );
        }
        if i == 3 {
            assert!(raw.len() < plain.len(), "compressed before encryption");
        }
    }
    Ok(())
}

#[test]
fn a_wrong_key_is_refused_at_open_and_a_missing_one_at_the_record() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("v.redb");
    fill(&open(&path, Transforms::new().encryption(key(1)))?, 3)?;
    let wrong = open(&path, Transforms::new().encryption(key(2))).err();
    let wrong = wrong
        .and_then(transform_error)
        .ok_or("the wrong key was accepted")?;
    assert_eq!(wrong.problem, TransformProblem::WrongKey);
    assert_eq!(wrong.table, "__netabase/meta");
    // Without the key: the store opens, and each encrypted value says it needs one.
    let keyless = open(&path, Transforms::new())?;
    let e = keyless
        .open_tree::<Secret>()
        .get(1)
        .err()
        .and_then(transform_error);
    let e = e.ok_or("an encrypted value was read without the key")?;
    assert_eq!(e.problem, TransformProblem::KeyRequired);
    assert_eq!(e.table, SECRET_TABLE);
    assert_eq!(e.key, 1u64.to_key_bytes());
    assert!(e.to_string().contains("VaultDefinition/Secret"), "{e}");
    drop(keyless);
    // Without the wrapper at all: the header says the value is sealed.
    let plain = VaultDefinition::open_redb(&path)?;
    let e = plain
        .open_tree::<Secret>()
        .get(1)
        .err()
        .and_then(transform_error);
    assert_eq!(e.map(|e| e.problem), Some(TransformProblem::NotOpened));
    Ok(())
}

#[test]
fn a_tampered_or_moved_value_fails_authentication() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = open(
        &dir.path().join("v.redb"),
        Transforms::new().encryption(key(1)),
    )?;
    fill(&store, 3)?;
    let inner = store.raw_backend().inner();
    let mut tampered = raw_value(&store, SECRET_TABLE, 1)?;
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let moved = raw_value(&store, SECRET_TABLE, 0)?;
    let txn = inner.begin_write()?;
    txn.put(SECRET_TABLE, &1u64.to_key_bytes(), &tampered)?;
    txn.put(SECRET_TABLE, &2u64.to_key_bytes(), &moved)?;
    txn.commit()?;
    let tree = store.open_tree::<Secret>();
    for id in [1u64, 2] {
        let e = tree
            .get(id)
            .err()
            .and_then(transform_error)
            .ok_or("accepted")?;
        assert_eq!(e.problem, TransformProblem::Authentication);
        assert_eq!(e.key, id.to_key_bytes());
    }
    assert_eq!(tree.get(0)?, Some(secret(0)));
    Ok(())
}

#[test]
fn a_store_reads_every_record_after_its_settings_change() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("v.redb");
    fill(&open(&path, Transforms::new())?, 4)?;
    let store = open(
        &path,
        Transforms::new()
            .compression(Compression::Lz4)
            .encryption(key(1)),
    )?;
    let tree = store.open_tree::<Secret>();
    assert_eq!(
        raw_value(&store, SECRET_TABLE, 1)?[0],
        1,
        "old values stay plain"
    );
    tree.put(secret(10))?;
    assert_eq!(raw_value(&store, SECRET_TABLE, 10)?[0], 2);
    // An update rewrites the record with the new settings.
    tree.put(secret(1))?;
    assert_eq!(raw_value(&store, SECRET_TABLE, 1)?[0], 2);
    let all: Vec<u64> = tree
        .iter()
        .map(|r| r.map(|(k, _)| k.0))
        .collect::<Result<_, _>>()?;
    assert_eq!(all, vec![0, 1, 2, 3, 10]);
    drop((tree, store));
    // Back to plain writes, with the key to read what is encrypted.
    let store = open(&path, Transforms::new().key(key(1)))?;
    let tree = store.open_tree::<Secret>();
    assert_eq!(tree.get(10)?, Some(secret(10)));
    tree.put(secret(11))?;
    assert_eq!(raw_value(&store, SECRET_TABLE, 11)?[0], 1);
    Ok(())
}

#[test]
fn one_model_can_stay_plain() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("v.redb");
    let store = open(
        &path,
        Transforms::new()
            .encryption(key(1))
            .model("VaultDefinition/Public", ValueTransform::PLAIN),
    )?;
    fill(&store, 2)?;
    store.open_tree::<Public>().put(Public {
        id: 1,
        text: "hello".into(),
    })?;
    drop(store);
    let keyless = open(&path, Transforms::new())?;
    assert_eq!(
        keyless.open_tree::<Public>().get(1)?.map(|p| p.text),
        Some("hello".into())
    );
    assert!(keyless.open_tree::<Secret>().get(1).is_err());
    Ok(())
}

#[test]
fn key_rotation_rewrites_every_value_with_progress() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("v.redb");
    let store = open(&path, Transforms::new().encryption(key(1)))?;
    fill(&store, 2500)?;
    let before = raw_value(&store, SECRET_TABLE, 5)?;
    let mut reports = Vec::new();
    let rewritten = store.raw_backend().rotate_key(key(2), |p| {
        reports.push((p.table.to_owned(), p.done, p.total))
    })?;
    assert_eq!(rewritten, 2500);
    assert_eq!(reports.last(), Some(&(SECRET_TABLE.to_owned(), 2500, 2500)));
    assert!(reports.len() >= 3, "{reports:?}");
    assert_ne!(raw_value(&store, SECRET_TABLE, 5)?, before);
    assert_eq!(store.open_tree::<Secret>().get(5)?, Some(secret(5)));
    drop(store);
    let old = open(&path, Transforms::new().encryption(key(1)))
        .err()
        .and_then(transform_error);
    assert_eq!(old.map(|e| e.problem), Some(TransformProblem::WrongKey));
    let store = open(&path, Transforms::new().encryption(key(2)))?;
    let tree = store.open_tree::<Secret>();
    assert_eq!(tree.get(2499)?, Some(secret(2499)));
    assert_eq!(
        tree.get_by_secondary_key(SecretOwnerSecondaryKey("owner0".into()))?
            .len(),
        834
    );
    Ok(())
}

#[test]
fn key_files_hold_raw_bytes_or_hex() -> TestResult {
    let hex = "00".repeat(31) + "ff\n";
    assert!(EncryptionKey::from_file_bytes(hex.as_bytes()).is_ok());
    assert!(EncryptionKey::from_file_bytes(&[7u8; 32]).is_ok());
    assert!(EncryptionKey::from_file_bytes(b"short").is_err());
    assert_eq!(format!("{:?}", key(1)), "EncryptionKey(..)");
    Ok(())
}

#[test]
fn rotation_keeps_plain_values_plain_and_needs_the_current_key() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("v.redb");
    let store = open(
        &path,
        Transforms::new()
            .encryption(key(1))
            .model("VaultDefinition/Public", ValueTransform::PLAIN),
    )?;
    fill(&store, 3)?;
    store.open_tree::<Public>().put(Public {
        id: 1,
        text: "hello".into(),
    })?;
    drop(store);
    // Opened with the key only (new values plain): rotation still re-encrypts.
    let store = open(&path, Transforms::new().key(key(1)))?;
    assert_eq!(store.raw_backend().rotate_key(key(3), |_| {})?, 3);
    assert_eq!(raw_value(&store, SECRET_TABLE, 1)?[0], 2);
    assert_eq!(raw_value(&store, "VaultDefinition/Public", 1)?[0], 1);
    assert_eq!(store.open_tree::<Secret>().get(2)?, Some(secret(2)));
    drop(store);
    let keyless = open(&path, Transforms::new())?;
    assert!(keyless.raw_backend().rotate_key(key(4), |_| {}).is_err());
    Ok(())
}

/// Opens the store at `path` with `transforms` and sync on for both models.
fn open_synced(path: &std::path::Path, transforms: Transforms) -> Result<Store, NetabaseError> {
    NetabaseStore::from_backend_with(
        Transformed::new(RedbBackend::create(path)?, transforms)?,
        netabase_store::OpenOptions::default().sync_all(),
    )
}

/// A plain in-memory replica with sync on.
fn plain_replica() -> Result<
    NetabaseStore<VaultDefinition, netabase_store::backend::memory::MemoryBackend>,
    NetabaseError,
> {
    NetabaseStore::from_backend_with(
        netabase_store::backend::memory::MemoryBackend::new(),
        netabase_store::OpenOptions::default().sync_all(),
    )
}

/// Every raw value of `table`, as the file holds it.
fn raw_values(store: &Store, table: &str) -> Result<Vec<Vec<u8>>, NetabaseError> {
    let txn = store.raw_backend().inner().begin_read()?;
    let mut out = Vec::new();
    txn.for_each_in(
        table,
        netabase_store::backend::RawRange::all(),
        netabase_store::backend::Direction::Forward,
        &mut |_, v| {
            out.push(v.to_vec());
            Ok(std::ops::ControlFlow::Continue(()))
        },
    )?;
    Ok(out)
}

/// Whether `haystack` holds `needle` somewhere.
fn holds(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The sync table of an encrypted model is encrypted too (its version stamps and record
/// hashes would otherwise let an attacker test guesses of the values), that of a plain
/// model stays plain; the store still reconciles with a plain replica, and key rotation
/// re-encrypts it.
#[test]
fn the_sync_table_of_an_encrypted_model_is_encrypted() -> TestResult {
    use netabase_store::sync::{self, SyncedTree};

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("v.redb");
    let transforms = || {
        Transforms::new()
            .encryption(key(1))
            .model("VaultDefinition/Public", ValueTransform::PLAIN)
    };
    let store = open_synced(&path, transforms())?;
    fill(&store, 300)?;
    store
        .open_tree::<Public>()
        .put_many((0..20).map(|id| Public {
            id,
            text: format!("public {id}"),
        }))?;
    store.open_tree::<Secret>().remove(7)?;
    let writer = sync::writer_id(&store).ok_or("no writer id")?;
    let sealed = raw_values(&store, "__netabase/sync/VaultDefinition/Secret")?;
    assert!(!sealed.is_empty());
    for value in &sealed {
        assert_eq!(
            value.get(..2),
            Some(&[2u8, 0x80][..]),
            "a sync value is not sealed"
        );
        assert!(!holds(value, &writer.0), "a stamp's writer id is readable");
    }
    let plain = raw_values(&store, "__netabase/sync/VaultDefinition/Public")?;
    assert!(
        plain.iter().any(|v| holds(v, &writer.0)),
        "the plain model's table is sealed"
    );
    sync::check(&store)?;

    let replica = plain_replica()?;
    sync::reconcile(&store, &replica)?;
    assert_eq!(replica.open_tree::<Secret>().len()?, 299);
    assert_eq!(
        store.open_tree::<Secret>().fingerprint::<u64>(..)?,
        replica.open_tree::<Secret>().fingerprint::<u64>(..)?
    );
    let version = store
        .open_tree::<Secret>()
        .version(7)?
        .ok_or("no tombstone")?;
    assert!(version.tombstone);

    // Rotation re-encrypts the sync table; the store keeps its sync state under the
    // new key.
    store.raw_backend().rotate_key(key(2), |_| {})?;
    drop(store);
    let store = open_synced(
        &path,
        Transforms::new()
            .encryption(key(2))
            .model("VaultDefinition/Public", ValueTransform::PLAIN),
    )?;
    sync::check(&store)?;
    assert_ne!(
        raw_values(&store, "__netabase/sync/VaultDefinition/Secret")?,
        sealed
    );
    let again = sync::reconcile(&store, &replica)?;
    assert_eq!(again.a.records_sent + again.b.records_sent, 0, "{again:?}");
    Ok(())
}

/// A synced store written before it was encrypted keeps its plain sync values readable
/// beside the sealed ones that later writes make.
#[test]
fn plain_sync_values_written_before_encryption_stay_readable() -> TestResult {
    use netabase_store::sync;

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("v.redb");
    let store = open_synced(&path, Transforms::new())?;
    fill(&store, 400)?;
    drop(store);
    let store = open_synced(&path, Transforms::new().encryption(key(1)))?;
    sync::check(&store)?;
    store
        .open_tree::<Secret>()
        .put_many((400..450).map(secret))?;
    store.open_tree::<Secret>().remove(3)?;
    sync::check(&store)?;
    let values = raw_values(&store, "__netabase/sync/VaultDefinition/Secret")?;
    assert!(values.iter().any(|v| v.get(..2) == Some(&[2u8, 0x80][..])));
    let replica = plain_replica()?;
    sync::reconcile(&store, &replica)?;
    assert_eq!(replica.open_tree::<Secret>().len()?, 449);
    assert_eq!(replica.open_tree::<Secret>().get(420)?, Some(secret(420)));
    Ok(())
}
