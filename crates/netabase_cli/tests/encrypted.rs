//! The `netabase` command line on an encrypted store: the key is asked for when values
//! are read, a wrong key is refused, imports stay encrypted, and keys rotate.

mod common;

use common::*;
use netabase_store::NetabaseStore;
use netabase_store::backend::redb::RedbBackend;
use netabase_store::backend::transform::{EncryptionKey, Transformed, Transforms};
use netabase_store::backend::{Backend, ReadTxn};
use netabase_store::prelude::*;

const KEY: [u8; 32] = [5; 32];

type Sealed = NetabaseStore<ShopDefinition, Transformed<RedbBackend>>;

fn sealed(path: &std::path::Path, key: [u8; 32]) -> Result<Sealed, NetabaseError> {
    let backend = Transformed::new(
        RedbBackend::create(path)?,
        Transforms::new().encryption(EncryptionKey::new(key)),
    )?;
    NetabaseStore::from_backend(backend)
}

fn key_file(dir: &std::path::Path, name: &str, key: [u8; 32]) -> std::io::Result<String> {
    let path = dir.join(name);
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(&path, hex + "\n")?;
    Ok(path.to_string_lossy().into_owned())
}

fn path(p: &std::path::Path) -> &str {
    p.to_str().unwrap_or_default()
}

#[test]
fn values_need_the_key_and_a_wrong_key_is_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("sealed.redb");
    fill(&sealed(&db, KEY)?, 4)?;
    let good = key_file(dir.path(), "good.key", KEY)?;
    let bad = key_file(dir.path(), "bad.key", [6; 32])?;
    let out = netabase(&["inspect", path(&db)], b"")?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("values: encrypted"));
    let out = netabase(&["dump", path(&db)], b"")?;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("is encrypted: give its key with --key-file"));
    let out = netabase(&["dump", path(&db), "--key-file", &bad], b"")?;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("is not the key of"),
        "{}",
        text(&out.stderr)
    );
    let out = netabase(&["export", path(&db), "--key-file", &good], b"")?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let first: serde_json::Value =
        serde_json::from_str(text(&out.stdout).lines().next().unwrap_or_default())?;
    assert_eq!(first["record"], serde_json::to_value(&customers(1)[0])?);
    let out = netabase(&["verify", path(&db), "--key-file", &good], b"")?;
    assert!(out.status.success(), "{}", text(&out.stdout));
    Ok(())
}

#[test]
fn imports_into_an_encrypted_store_stay_encrypted() -> TestResult {
    let dir = tempfile::tempdir()?;
    let from = redb_fixture(dir.path(), 6)?;
    let exported = netabase(&["export", path(&from)], b"")?;
    let to = dir.path().join("sealed.redb");
    drop(sealed(&to, KEY)?);
    let good = key_file(dir.path(), "good.key", KEY)?;
    let out = netabase(&["import", path(&to)], &exported.stdout)?;
    assert!(
        text(&out.stderr).contains("is encrypted"),
        "{}",
        text(&out.stderr)
    );
    let out = netabase(
        &[
            "import",
            path(&to),
            "--key-file",
            &good,
            "--compression",
            "zstd",
        ],
        &exported.stdout,
    )?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let store = sealed(&to, KEY)?;
    let txn = store.raw_backend().inner().begin_read()?;
    let raw = txn
        .get("ShopDefinition/Customer", &3u64.to_key_bytes())?
        .unwrap_or_default();
    assert_eq!(raw.first(), Some(&2), "the imported value is not sealed");
    assert!(
        !raw.windows(8).any(|w| w == b"customer"),
        "plaintext on disk"
    );
    drop(txn);
    let tree = store.open_tree::<Customer>();
    assert_eq!(tree.get(3)?, Some(customers(6)[3].clone()));
    Ok(())
}

#[test]
fn rotate_key_rewrites_every_value() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("sealed.redb");
    fill(&sealed(&db, KEY)?, 5)?;
    let old = key_file(dir.path(), "old.key", KEY)?;
    let new = key_file(dir.path(), "new.key", [8; 32])?;
    let out = netabase(
        &[
            "rotate-key",
            path(&db),
            "--key-file",
            &old,
            "--new-key-file",
            &new,
        ],
        b"",
    )?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("re-encrypted 7 values"));
    let out = netabase(&["dump", path(&db), "--key-file", &old], b"")?;
    assert!(!out.status.success());
    let out = netabase(&["dump", path(&db), "--key-file", &new, "-m", "Note"], b"")?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("hello"));
    Ok(())
}
