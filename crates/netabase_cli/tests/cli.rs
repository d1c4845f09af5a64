//! The `netabase` command line, end to end, on redb and sled databases that each test
#![allow(missing_docs)]
//! creates.

mod common;

use common::*;
use netabase_store::backend::{Backend, WriteTxn};
use netabase_store::prelude::*;

fn path(p: &std::path::Path) -> &str {
    p.to_str().unwrap_or_default()
}

#[test]
fn every_command_has_help() -> TestResult {
    let out = netabase(&["--help"], b"")?;
    assert!(out.status.success());
    let top = text(&out.stdout);
    for command in [
        "inspect",
        "verify",
        "dump",
        "export",
        "import",
        "compact",
        "stats",
        "prune-tombstones",
    ] {
        assert!(
            top.contains(command),
            "{command} missing from --help:\n{top}"
        );
        let out = netabase(&[command, "--help"], b"")?;
        assert!(out.status.success(), "{command} --help failed");
        let help = text(&out.stdout);
        assert!(help.contains("Usage: netabase"), "{help}");
        assert!(
            help.contains("--key-file"),
            "{command} has no --key-file:\n{help}"
        );
    }
    Ok(())
}

#[test]
fn inspect_shows_models_fields_keys_versions_and_tables() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = redb_fixture(dir.path(), 7)?;
    let out = netabase(&["inspect", path(&db)], b"")?;
    let shown = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(shown.contains("(redb, format 1)"), "{shown}");
    assert!(shown.contains("definition ShopDefinition"), "{shown}");
    assert!(
        shown.contains("model Customer (version 2, table ShopDefinition/Customer, 7 records)"),
        "{shown}"
    );
    assert!(shown.contains("id        u64"), "{shown}");
    assert!(shown.contains("primary key"), "{shown}");
    assert!(
        shown.contains("unique key (ShopDefinition/Customer/email, 7 entries)"),
        "{shown}"
    );
    assert!(
        shown.contains("secondary key (ShopDefinition/Customer/age, 7 entries)"),
        "{shown}"
    );
    assert!(shown.contains("Option<String>"), "{shown}");
    assert!(shown.contains("model Note (version 0, table ShopDefinition/Note, 2 records)"));
    assert!(shown.contains("__netabase/meta"), "{shown}");
    Ok(())
}

#[test]
fn export_writes_each_record_as_serde_json_would() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = redb_fixture(dir.path(), 5)?;
    let out = netabase(&["export", path(&db)], b"")?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(lines.len(), 7);
    for (line, customer) in lines.iter().zip(customers(5)) {
        assert_eq!(line["model"], "ShopDefinition/Customer");
        assert_eq!(line["record"], serde_json::to_value(&customer)?);
    }
    assert_eq!(lines[5]["record"], serde_json::to_value(&notes()[0])?);
    assert_eq!(lines[6]["record"], serde_json::to_value(&notes()[1])?);
    Ok(())
}

#[test]
fn dump_is_readable_and_filters_by_model() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = redb_fixture(dir.path(), 3)?;
    let out = netabase(&["dump", path(&db), "--model", "Note"], b"")?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert_eq!(
        shown,
        "ShopDefinition/Note (2 records)\n  title: \"first\", body: \"hello\"\n  title: \
         \"second\", body: \"with \\\"quotes\\\" and é\"\n"
    );
    let out = netabase(&["dump", path(&db), "-m", "Customer", "--json"], b"")?;
    let first: serde_json::Value =
        serde_json::from_str(text(&out.stdout).lines().next().unwrap_or_default())?;
    assert_eq!(first["record"], serde_json::to_value(&customers(1)[0])?);
    let out = netabase(&["dump", path(&db), "--model", "Nope"], b"")?;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no model is named `Nope`"));
    assert!(text(&out.stderr).contains("ShopDefinition/Customer, ShopDefinition/Note"));
    Ok(())
}

#[test]
fn import_goes_through_the_write_pipeline() -> TestResult {
    let dir = tempfile::tempdir()?;
    let from = redb_fixture(dir.path(), 20)?;
    let exported = netabase(&["export", path(&from)], b"")?;
    assert!(exported.status.success());
    // An empty database of the same definition, then the import.
    let to = dir.path().join("copy.redb");
    drop(ShopDefinition::open_redb(&to)?);
    let out = netabase(&["import", path(&to)], &exported.stdout)?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("imported 22 records"));
    let store = ShopDefinition::open_redb(&to)?;
    let tree = store.open_tree::<Customer>();
    let stored: Vec<Customer> = tree
        .iter()
        .map(|r| r.map(|(_, c)| c))
        .collect::<Result<_, _>>()?;
    assert_eq!(stored, customers(20));
    // Indexes were written: lookups by both secondary keys find the records.
    let by_email = tree.get_by_unique_key(CustomerEmailSecondaryKey("c7@example.com".into()))?;
    assert_eq!(by_email.map(|c| c.id), Some(7));
    assert_eq!(
        tree.get_by_secondary_key(CustomerAgeSecondaryKey(21))?
            .len(),
        4
    );
    drop((tree, store));
    let out = netabase(&["verify", path(&to)], b"")?;
    assert!(out.status.success(), "{}", text(&out.stdout));
    Ok(())
}

#[test]
fn import_refuses_a_unique_key_held_by_another_record_and_writes_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = redb_fixture(dir.path(), 3)?;
    let input = concat!(
        r#"{"model":"Note","record":{"title":"third","body":"new"}}"#,
        "\n",
        r#"{"model":"ShopDefinition/Customer","record":{"id":99,"name":"x","email":"c1@example.com","age":1,"tags":[],"nickname":null,"balance":0,"score":0,"avatar":[],"home":[0,0]}}"#,
        "\n"
    );
    let out = netabase(&["import", path(&db)], input.as_bytes())?;
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("line 2, record 2 (`ShopDefinition/Customer`, primary key 99)"),
        "{err}"
    );
    // The key's value and its holder are shown readable, not as encoded bytes.
    assert!(
        err.contains(
            r#"`Customer.email` = "c1@example.com" is already held by the record with primary key "#
        ),
        "{err}"
    );
    assert!(!err.contains("0x"), "{err}");
    assert!(err.contains("nothing was imported"), "{err}");
    let store = ShopDefinition::open_redb(&db)?;
    assert_eq!(
        store.open_tree::<Note>().len()?,
        2,
        "the first record was kept"
    );
    assert!(store.open_tree::<Customer>().get(99)?.is_none());
    Ok(())
}

#[test]
fn import_names_the_line_and_field_of_a_bad_record() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = redb_fixture(dir.path(), 1)?;
    let input = b"\n{\"model\":\"Note\",\"record\":{\"title\":\"t\",\"body\":7}}\n";
    let out = netabase(&["import", path(&db)], input)?;
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("line 2") && err.contains("field `body`"),
        "{err}"
    );
    let input = b"{\"model\":\"Customer\",\"record\":{\"id\":-1}}\n";
    let err = text(&netabase(&["import", path(&db)], input)?.stderr);
    assert!(
        err.contains("line 1") && err.contains("`name` is missing"),
        "{err}"
    );
    Ok(())
}

#[test]
fn verify_finds_index_damage_and_repair_rebuilds_after_a_backup() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = redb_fixture(dir.path(), 10)?;
    let out = netabase(&["verify", path(&db)], b"")?;
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("engine integrity check (redb): ok"));
    assert!(text(&out.stdout).contains("checked 2 models, 12 records"));
    {
        // Damage: a missing index entry, a stray one, and a unique entry pointing at
        // the wrong record, written past the typed layer.
        let store = ShopDefinition::open_redb(&db)?;
        let txn = store.raw_backend().begin_write()?;
        let mut key = 21u32.to_key_bytes();
        key.extend(1u64.to_key_bytes());
        assert!(txn.delete("ShopDefinition/Customer/age", &key)?);
        let mut stray = 99u32.to_key_bytes();
        stray.extend(1234u64.to_key_bytes());
        txn.put("ShopDefinition/Customer/age", &stray, &[])?;
        txn.put(
            "ShopDefinition/Customer/email",
            &"c2@example.com".to_string().to_key_bytes(),
            &3u64.to_key_bytes(),
        )?;
        txn.commit()?;
    }
    let out = netabase(&["verify", path(&db)], b"")?;
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(report.contains("3 problems found"), "{report}");
    assert!(
        report.contains("a record has no entry in this index"),
        "{report}"
    );
    assert!(
        report.contains("the index entry matches no record"),
        "{report}"
    );
    assert!(report.contains("the entry points at"), "{report}");
    let out = netabase(&["verify", "--repair", path(&db)], b"")?;
    let report = text(&out.stdout);
    assert!(out.status.success(), "{report}{}", text(&out.stderr));
    assert!(
        report.contains("no problems found after the repair"),
        "{report}"
    );
    let backups: Vec<_> = std::fs::read_dir(dir.path())?
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("shop.redb.backup-")
        })
        .collect();
    assert_eq!(backups.len(), 1);
    // The backup still has the damage; the repaired file answers lookups again.
    let out = netabase(&["verify", path(&backups[0].path())], b"")?;
    assert_eq!(out.status.code(), Some(1));
    let store = ShopDefinition::open_redb(&db)?;
    let tree = store.open_tree::<Customer>();
    assert_eq!(
        tree.get_by_unique_key(CustomerEmailSecondaryKey("c2@example.com".into()))?
            .map(|c| c.id),
        Some(2)
    );
    assert_eq!(
        tree.get_by_secondary_key(CustomerAgeSecondaryKey(21))?
            .len(),
        2
    );
    Ok(())
}

#[test]
fn verify_reports_a_value_that_does_not_decode_with_its_table_and_key() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = redb_fixture(dir.path(), 2)?;
    {
        let store = ShopDefinition::open_redb(&db)?;
        let txn = store.raw_backend().begin_write()?;
        txn.put(
            "ShopDefinition/Note",
            &"first".to_string().to_key_bytes(),
            &[1, 0, 0, 5],
        )?;
        txn.commit()?;
    }
    let out = netabase(&["verify", path(&db)], b"")?;
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(report.contains("ShopDefinition/Note at key"), "{report}");
    assert!(report.contains("field `title`"), "{report}");
    // dump shows the others and fails; export refuses.
    let out = netabase(&["dump", path(&db), "-m", "Note"], b"")?;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("second"));
    let out = netabase(&["export", path(&db)], b"")?;
    assert!(!out.status.success());
    Ok(())
}

#[test]
fn a_database_in_use_is_refused_with_a_clear_message() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = redb_fixture(dir.path(), 1)?;
    let store = ShopDefinition::open_redb(&db)?;
    let out = netabase(&["inspect", path(&db)], b"")?;
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("is in use by another process"), "{err}");
    assert!(err.contains("redb locks the file"), "{err}");
    drop(store);
    let sled = dir.path().join("shop.sled");
    let store = ShopDefinition::open_sled(&sled)?;
    fill(&store, 1)?;
    let out = netabase(&["stats", path(&sled)], b"")?;
    let err = text(&out.stderr);
    assert!(err.contains("is in use by another process"), "{err}");
    assert!(err.contains("sled locks the directory"), "{err}");
    drop(store);
    Ok(())
}

#[test]
fn sled_databases_are_inspected_verified_and_exported() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = sled_fixture(dir.path(), 4)?;
    let out = netabase(&["inspect", path(&db)], b"")?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("(sled, format 1)"));
    let out = netabase(&["verify", path(&db)], b"")?;
    assert!(out.status.success(), "{}", text(&out.stdout));
    let out = netabase(&["export", path(&db)], b"")?;
    assert_eq!(text(&out.stdout).lines().count(), 6);
    let out = netabase(&["compact", path(&db)], b"")?;
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("sled compacts its segments by itself"));
    Ok(())
}

#[test]
fn stats_and_compact_on_redb() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = redb_fixture(dir.path(), 50)?;
    {
        let store = ShopDefinition::open_redb(&db)?;
        store.open_tree::<Customer>().remove_many(0..45)?;
    }
    let out = netabase(&["stats", path(&db)], b"")?;
    let shown = text(&out.stdout);
    assert!(out.status.success());
    assert!(shown.contains("ShopDefinition/Customer\n"), "{shown}");
    assert!(shown.contains("on disk:"), "{shown}");
    let out = netabase(&["compact", path(&db)], b"")?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(" bytes"));
    let out = netabase(&["verify", path(&db)], b"")?;
    assert!(out.status.success());
    Ok(())
}

#[test]
fn a_missing_file_is_reported() -> TestResult {
    let out = netabase(&["inspect", "/nonexistent/shop.redb"], b"")?;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("cannot open /nonexistent/shop.redb"));
    Ok(())
}

/// A database with sync on: `inspect` shows each synced model's versions and
/// tombstones, `import` stamps what it writes, and `verify` checks the sync metadata
/// against the records.
#[test]
fn sync_state_is_shown_kept_by_import_and_verified() -> TestResult {
    use netabase_store::OpenOptions;
    use netabase_store::backend::redb::RedbBackend;

    let dir = tempfile::tempdir()?;
    let db = dir.path().join("synced.redb");
    let writer = {
        let store = NetabaseStore::<ShopDefinition, _>::from_backend_with(
            RedbBackend::create(&db)?,
            OpenOptions::default().sync_model("Customer"),
        )?;
        fill(&store, 5)?;
        store.open_tree::<Customer>().remove(4)?;
        netabase_store::sync::writer_id(&store).ok_or("no writer id")?
    };
    let shown_writer: String = writer.0[..4].iter().map(|b| format!("{b:02x}")).collect();
    let out = netabase(&["inspect", path(&db)], b"")?;
    let shown = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        shown.contains(&format!(
            "    sync on: 4 versions, 1 tombstones; this database writes as {shown_writer}.."
        )),
        "{shown}"
    );
    // Only the synced model says so.
    assert_eq!(shown.matches("sync on:").count(), 1, "{shown}");

    let input = r#"{"model":"ShopDefinition/Customer","record":{"id":99,"name":"x","email":"new@example.com","age":1,"tags":[],"nickname":null,"balance":0,"score":0,"avatar":[],"home":[0,0]}}"#;
    let out = netabase(&["import", path(&db)], input.as_bytes())?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = netabase(&["verify", path(&db)], b"")?;
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let shown = text(&netabase(&["inspect", path(&db)], b"")?.stdout);
    assert!(
        shown.contains("sync on: 5 versions, 1 tombstones"),
        "{shown}"
    );

    // Tombstones younger than the age stay; `--older-than 0s` prunes them all.
    let prune = |age: &str| netabase(&["prune-tombstones", path(&db), "--older-than", age], b"");
    let out = prune("30d")?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("pruned 0 tombstones older than 30d"));
    let out = prune("0s")?;
    assert!(text(&out.stdout).contains("pruned 1 tombstones older than 0s"));
    let shown = text(&netabase(&["inspect", path(&db)], b"")?.stdout);
    assert!(
        shown.contains("sync on: 5 versions, 0 tombstones"),
        "{shown}"
    );
    let out = prune("3w")?;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("not a unit of age"));

    // A record removed past the sync metadata is a finding.
    {
        let backend = RedbBackend::create(&db)?;
        let txn = backend.begin_write()?;
        assert!(txn.delete("ShopDefinition/Customer", &2u64.to_key_bytes())?);
        txn.commit()?;
    }
    let out = netabase(&["verify", path(&db)], b"")?;
    let shown = text(&out.stdout) + &text(&out.stderr);
    assert!(!out.status.success(), "{shown}");
    assert!(
        shown.contains("sync: a live sync entry names a record that is not stored"),
        "{shown}"
    );
    // The repair stamps the removal as a tombstone.
    let out = netabase(&["verify", "--repair", path(&db)], b"")?;
    let shown = text(&out.stdout) + &text(&out.stderr);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("repaired the sync metadata: 1 versions written"),
        "{shown}"
    );
    assert!(
        shown.contains("no problems found after the repair"),
        "{shown}"
    );
    let shown = text(&netabase(&["inspect", path(&db)], b"")?.stdout);
    assert!(
        shown.contains("sync on: 4 versions, 1 tombstones"),
        "{shown}"
    );
    Ok(())
}
