//! Reconciling two stores: random histories on both sides converge to the merge rule
//! applied key by key, with identical model tables, indexes and sync tables.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use netabase_store::backend::memory::MemoryBackend;
use netabase_store::backend::redb::RedbBackend;
#[cfg(feature = "sled")]
use netabase_store::backend::sled::SledBackend;
use netabase_store::backend::{Backend, Direction, RawRange, ReadTxn};
use netabase_store::prelude::*;
use netabase_store::sync::{
    self, Choice, Hlc, MergeRule, ReconcileOptions, SyncedTree, Version, VersionStamp, WriterId,
};
use netabase_store::{META_TABLE, NetabaseStore, OpenOptions, SyncProblem};
use proptest::prelude::*;

/// The synced schema of these tests.
#[netabase_definition_module(SyncDefinition, SyncKeys)]
pub mod models {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(SyncDefinition)]
    /// A synced model with a non-unique index.
    pub struct Note {
        /// Primary key.
        #[primary_key]
        pub id: u32,
        /// Not indexed.
        pub text: String,
        /// Non-unique index.
        #[secondary_key]
        pub tag: u8,
    }

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(SyncDefinition)]
    /// A synced model with a unique key.
    pub struct Account {
        /// Primary key.
        #[primary_key]
        pub id: u32,
        /// Unique index.
        #[secondary_key(unique)]
        pub email: String,
    }

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(SyncDefinition)]
    /// A model that is not synced.
    pub struct Local {
        /// Primary key.
        #[primary_key]
        pub id: u32,
    }
}

use models::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn synced() -> OpenOptions {
    OpenOptions::default()
        .sync_model("Note")
        .sync_model("Account")
}

fn memory() -> Result<NetabaseStore<SyncDefinition, MemoryBackend>, NetabaseError> {
    NetabaseStore::from_backend_with(MemoryBackend::new(), synced())
}

fn redb() -> Result<NetabaseStore<SyncDefinition, RedbBackend>, NetabaseError> {
    NetabaseStore::from_backend_with(RedbBackend::temp()?, synced())
}

#[cfg(feature = "sled")]
fn sled() -> Result<NetabaseStore<SyncDefinition, SledBackend>, NetabaseError> {
    NetabaseStore::from_backend_with(SledBackend::temp()?, synced())
}

fn note(id: u32, text: &str, tag: u8) -> Note {
    Note {
        id,
        text: text.to_owned(),
        tag,
    }
}

/// Every non-empty table except the meta table (which holds each store's own writer id
/// and clock), entry by entry.
type Tables = BTreeMap<String, Vec<(Vec<u8>, Vec<u8>)>>;

fn tables<B: Backend>(store: &NetabaseStore<SyncDefinition, B>) -> Result<Tables, NetabaseError> {
    let txn = store.raw_backend().begin_read()?;
    let mut out = BTreeMap::new();
    for name in txn.table_names()? {
        if name == META_TABLE {
            continue;
        }
        let mut entries = Vec::new();
        txn.for_each_in(&name, RawRange::all(), Direction::Forward, &mut |k, v| {
            entries.push((k.to_vec(), v.to_vec()));
            Ok(ControlFlow::Continue(()))
        })?;
        if !entries.is_empty() {
            out.insert(name, entries);
        }
    }
    Ok(out)
}

/// The `tag` index holds exactly one entry per stored note.
fn assert_tag_index_exact<B: Backend>(store: &NetabaseStore<SyncDefinition, B>) -> TestResult {
    let notes: Vec<Note> = store
        .open_tree::<Note>()
        .iter()
        .map(|r| r.map(|(_, n)| n))
        .collect::<Result<_, _>>()?;
    let table = <Note as NetabaseModelTrait<SyncDefinition>>::INFO.secondary_keys[0].table;
    let txn = store.raw_backend().begin_read()?;
    let mut actual = Vec::new();
    txn.for_each_in(table, RawRange::all(), Direction::Forward, &mut |k, _| {
        actual.push(k.to_vec());
        Ok(ControlFlow::Continue(()))
    })?;
    let mut expected: Vec<Vec<u8>> = notes
        .iter()
        .map(|n| {
            let mut k = n.tag.to_key_bytes();
            k.extend(n.id.to_key_bytes());
            k
        })
        .collect();
    expected.sort();
    assert_eq!(actual, expected, "the tag index is not exact");
    for n in &notes {
        assert!(
            store
                .open_tree::<Note>()
                .get_by_secondary_key(NoteTagSecondaryKey(n.tag))?
                .contains(n)
        );
    }
    Ok(())
}

fn held<B: Backend>(
    store: &NetabaseStore<SyncDefinition, B>,
) -> Result<BTreeMap<u32, Note>, NetabaseError> {
    store
        .open_tree::<Note>()
        .iter()
        .map(|r| r.map(|(_, n)| (n.id, n)))
        .collect()
}

#[derive(Debug, Clone)]
enum Op {
    Put { id: u32, tag: u8, text: u8 },
    Remove { id: u32 },
    Clear,
    Reconcile,
}

fn op() -> impl Strategy<Value = (u8, Op)> {
    let op = prop_oneof![
        8 => (0u32..24, 0u8..4, 0u8..3).prop_map(|(id, tag, text)| Op::Put { id, tag, text }),
        4 => (0u32..24).prop_map(|id| Op::Remove { id }),
        1 => Just(Op::Clear),
        1 => Just(Op::Reconcile),
    ];
    // Side 0: the first store, 1: the second, 2: both (the same write, two stamps).
    (0u8..3, op)
}

fn run_op<B: Backend>(store: &NetabaseStore<SyncDefinition, B>, op: &Op) -> TestResult {
    let notes = store.open_tree::<Note>();
    match op {
        Op::Put { id, tag, text } => notes.put(note(*id, &format!("text {text}"), *tag))?,
        Op::Remove { id } => drop(notes.remove(*id)?),
        Op::Clear => notes.clear()?,
        Op::Reconcile => {}
    }
    Ok(())
}

/// Plays `history` on `a` and `b`, then checks that reconciling makes both hold, key by
/// key, the version with the greater stamp, with identical tables.
fn converge<A: Backend, B: Backend>(
    a: &NetabaseStore<SyncDefinition, A>,
    b: &NetabaseStore<SyncDefinition, B>,
    history: &[(u8, Op)],
) -> TestResult {
    for (side, op) in history {
        if let Op::Reconcile = op {
            sync::reconcile(a, b)?;
            continue;
        }
        if *side != 1 {
            run_op(a, op)?;
        }
        if *side != 0 {
            run_op(b, op)?;
        }
    }
    let (ta, tb) = (a.open_tree::<Note>(), b.open_tree::<Note>());
    // The merge rule, key by key, from what each side holds now.
    let mut expected = BTreeMap::new();
    for id in 0u32..24 {
        let winner = match (ta.version(id)?, tb.version(id)?) {
            (None, None) => continue,
            (Some(_), None) => ta.get(id)?,
            (None, Some(_)) => tb.get(id)?,
            (Some(va), Some(vb)) if va.stamp >= vb.stamp => ta.get(id)?,
            (Some(_), Some(_)) => tb.get(id)?,
        };
        if let Some(n) = winner {
            expected.insert(id, n);
        }
    }
    let report = sync::reconcile(a, b)?;
    assert_eq!(held(a)?, expected, "first store; report: {report}");
    assert_eq!(held(b)?, expected, "second store; report: {report}");
    assert_eq!(tables(a)?, tables(b)?, "the stores' tables differ");
    assert_tag_index_exact(a)?;
    assert_tag_index_exact(b)?;
    sync::check(a)?;
    sync::check(b)?;
    assert_eq!(ta.fingerprint::<u32>(..)?, tb.fingerprint::<u32>(..)?);
    // Nothing is left to exchange: one message, no record.
    let again = sync::reconcile(a, b)?;
    assert_eq!(
        (again.messages, again.a.records_sent, again.b.records_sent),
        (1, 0, 0)
    );
    Ok(())
}

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_histories_converge_in_memory(history in prop::collection::vec(op(), 0..60)) {
        converge(&memory().map_err(fail)?, &memory().map_err(fail)?, &history).map_err(fail)?;
    }

    #[test]
    fn random_histories_converge_across_memory_and_redb(history in prop::collection::vec(op(), 0..60)) {
        converge(&memory().map_err(fail)?, &redb().map_err(fail)?, &history).map_err(fail)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn random_histories_converge_on_redb(history in prop::collection::vec(op(), 0..60)) {
        converge(&redb().map_err(fail)?, &redb().map_err(fail)?, &history).map_err(fail)?;
    }

    #[cfg(feature = "sled")]
    #[test]
    fn random_histories_converge_on_sled(history in prop::collection::vec(op(), 0..60)) {
        converge(&sled().map_err(fail)?, &sled().map_err(fail)?, &history).map_err(fail)?;
    }
}

#[test]
fn large_stores_with_few_differences_exchange_little() -> TestResult {
    let (a, b) = (memory()?, memory()?);
    let notes: Vec<Note> = (0..5_000).map(|i| note(i, "same", (i % 4) as u8)).collect();
    a.open_tree::<Note>().put_many(notes)?;
    sync::reconcile(&a, &b)?;
    a.open_tree::<Note>().put(note(17, "changed on a", 1))?;
    b.open_tree::<Note>().remove(4_000)?;
    b.open_tree::<Note>().put(note(9_000, "new on b", 2))?;
    let whole = sync::full_transfer_bytes(&a)?;
    let report = sync::reconcile(&a, &b)?;
    assert_eq!(report.a.records_sent, 1, "{report}");
    assert_eq!(report.b.records_sent, 2, "{report}");
    assert!(
        report.bytes() * 20 < whole,
        "{report} against {whole} bytes"
    );
    assert_eq!(tables(&a)?, tables(&b)?);
    assert_eq!(
        b.open_tree::<Note>().get(17)?,
        Some(note(17, "changed on a", 1))
    );
    assert_eq!(a.open_tree::<Note>().get(4_000)?, None);
    Ok(())
}

#[test]
fn a_removal_is_not_undone_and_a_later_write_wins_over_it() -> TestResult {
    let (a, b) = (memory()?, memory()?);
    a.open_tree::<Note>().put(note(1, "one", 0))?;
    sync::reconcile(&a, &b)?;
    a.open_tree::<Note>().remove(1)?;
    sync::reconcile(&a, &b)?;
    assert_eq!(b.open_tree::<Note>().get(1)?, None);
    let tomb = b.open_tree::<Note>().version(1)?.ok_or("no tombstone")?;
    assert!(tomb.tombstone);
    // A write made after the removal has a greater stamp, wherever it happens.
    b.open_tree::<Note>().put(note(1, "again", 3))?;
    assert!(b.open_tree::<Note>().version(1)?.ok_or("no version")?.stamp > tomb.stamp);
    sync::reconcile(&a, &b)?;
    assert_eq!(a.open_tree::<Note>().get(1)?, Some(note(1, "again", 3)));
    assert_tag_index_exact(&a)?;
    Ok(())
}

#[test]
fn a_merged_record_that_breaks_a_unique_key_is_a_typed_conflict() -> TestResult {
    let (a, b) = (memory()?, memory()?);
    a.open_tree::<Account>().put(Account {
        id: 1,
        email: "x@example.org".into(),
    })?;
    b.open_tree::<Account>().put(Account {
        id: 2,
        email: "x@example.org".into(),
    })?;
    b.open_tree::<Note>().put(note(5, "unrelated", 1))?;
    let err = sync::reconcile(&a, &b)
        .err()
        .ok_or("the conflict was not reported")?;
    let NetabaseError::Sync(e) = err else {
        return Err(format!("unexpected error {err}").into());
    };
    let SyncProblem::Conflicts(conflicts) = &e.problem else {
        return Err(format!("unexpected problem {e}").into());
    };
    assert_eq!(conflicts.len(), 2, "{conflicts:?}");
    assert!(conflicts.iter().all(|c| c.model == "Account"));
    // Everything else was reconciled, and each side kept its own account intact.
    assert_eq!(a.open_tree::<Note>().get(5)?, Some(note(5, "unrelated", 1)));
    assert_eq!(a.open_tree::<Account>().len()?, 1);
    assert_eq!(b.open_tree::<Account>().len()?, 1);
    // Once the application resolves it, the stores converge.
    b.open_tree::<Account>().put(Account {
        id: 2,
        email: "y@example.org".into(),
    })?;
    sync::reconcile(&a, &b)?;
    assert_eq!(tables(&a)?, tables(&b)?);
    Ok(())
}

#[test]
fn sync_turned_on_for_an_existing_store_builds_from_its_records_and_stays_on() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("db.redb");
    {
        let plain = NetabaseStore::<SyncDefinition, _>::from_backend(RedbBackend::create(&path)?)?;
        plain
            .open_tree::<Note>()
            .put_many((0..300).map(|i| note(i, "old", 0)))?;
        assert!(
            plain.open_tree::<Note>().version(1).is_err(),
            "not synced yet"
        );
    }
    let writer = WriterId([7; 32]);
    {
        let store = NetabaseStore::<SyncDefinition, _>::from_backend_with(
            RedbBackend::create(&path)?,
            OpenOptions::default().sync_model("Note").writer_id(writer),
        )?;
        sync::check(&store)?;
        let v = store
            .open_tree::<Note>()
            .version(299)?
            .ok_or("no version")?;
        assert_eq!(v.stamp.writer, writer);
        assert_eq!(store.open_tree::<Note>().fingerprint::<u32>(..)?.count, 300);
    }
    // Reopened without the option: still synced, same writer, and writes keep the tree.
    let store = NetabaseStore::<SyncDefinition, _>::from_backend(RedbBackend::create(&path)?)?;
    assert_eq!(sync::writer_id(&store), Some(writer));
    store.open_tree::<Note>().remove(3)?;
    store.open_tree::<Note>().put(note(1000, "new", 2))?;
    sync::check(&store)?;
    assert!(
        store
            .open_tree::<Note>()
            .version(3)?
            .ok_or("no tombstone")?
            .tombstone
    );
    assert_eq!(
        store.open_tree::<Note>().fingerprint(0u32..1000)?.count,
        300
    );
    // A model that is not synced says so.
    let err = store
        .open_tree::<Account>()
        .version(1)
        .err()
        .ok_or("Account is not synced")?;
    assert!(matches!(&err, NetabaseError::Sync(e) if e.problem == SyncProblem::NotSynced));
    Ok(())
}

/// `sync::check` compares the sync entries with the stored records: a record written
/// past the sync metadata, or removed past it, is reported with its key; `sync::repair`
/// stamps what bypassed the metadata and recomputes a damaged tree.
#[test]
fn check_finds_and_repair_fixes_writes_past_the_sync_metadata() -> TestResult {
    use netabase_store::backend::WriteTxn;

    let backend = MemoryBackend::new();
    let store = NetabaseStore::<SyncDefinition, _>::from_backend_with(backend.clone(), synced())?;
    let notes = store.open_tree::<Note>();
    notes.put_many((0..40).map(|i| note(i, "x", 1)))?;
    sync::check(&store)?;
    let replica = memory()?;
    sync::reconcile(&store, &replica)?;
    let damaged = |store: &NetabaseStore<SyncDefinition, MemoryBackend>, words: &str| {
        match sync::check(store) {
            Err(NetabaseError::Sync(e)) if e.problem == SyncProblem::Damaged => {
                assert!(e.reason.contains(words), "{e}");
                Ok(())
            }
            other => Err(format!("expected a damaged store, got {other:?}")),
        }
    };
    let raw = |f: &dyn Fn(&<MemoryBackend as Backend>::Write<'_>) -> Result<(), NetabaseError>| {
        let txn = backend.begin_write()?;
        f(&txn)?;
        txn.commit()
    };
    let table = "SyncDefinition/Note";
    let key = NotePrimaryKey(7).to_key_bytes();
    let value = backend
        .begin_read()?
        .get(table, &key)?
        .ok_or("no record 7")?;

    // A new key written straight into the table has no version stamp.
    let new_key = NotePrimaryKey(1000).to_key_bytes();
    raw(&|txn| txn.put(table, &new_key, &value))?;
    damaged(&store, "no sync entry")?;
    raw(&|txn| txn.delete(table, &new_key).map(drop))?;
    sync::check(&store)?;

    // Another value at a stamped key is not the version its entry fingerprints.
    let other = backend
        .begin_read()?
        .get(table, &NotePrimaryKey(8).to_key_bytes())?;
    let other = other.ok_or("no record 8")?;
    raw(&|txn| txn.put(table, &key, &other))?;
    damaged(&store, "not the version")?;

    // A record removed past the metadata leaves a live entry without its record.
    raw(&|txn| txn.delete(table, &key).map(drop))?;
    damaged(&store, "not stored")?;

    // `repair` stamps what bypassed the metadata as if it had gone through the write
    // pipeline: the removal becomes a tombstone, a record written past it a new
    // version; a replica then takes both.
    let encoded = {
        let elsewhere = memory()?;
        elsewhere.open_tree::<Note>().put(note(1000, "raw", 2))?;
        let txn = elsewhere.raw_backend().begin_read()?;
        txn.get(table, &new_key)?.ok_or("no record 1000")?
    };
    raw(&|txn| txn.put(table, &new_key, &encoded))?;
    assert_eq!(sync::repair(&store)?, 2);
    sync::check(&store)?;
    let writer = sync::writer_id(&store).ok_or("no writer id")?;
    let removed = notes.version(7)?.ok_or("no version of 7")?;
    assert!(removed.tombstone);
    assert_eq!(removed.stamp.writer, writer);
    assert!(!notes.version(1000)?.ok_or("no version of 1000")?.tombstone);
    assert_eq!(sync::repair(&store)?, 0, "a sound store needs no repair");
    let report = sync::reconcile(&store, &replica)?;
    assert_eq!(report.a.records_sent, 2, "{report:?}");
    let replicated = replica.open_tree::<Note>();
    assert_eq!(replicated.get(7)?, None);
    assert_eq!(replicated.get(1000)?, Some(note(1000, "raw", 2)));

    // A block sum lost from the tree is recomputed from the entries.
    let sync_table = "__netabase/sync/SyncDefinition/Note";
    assert!(backend.begin_read()?.get(sync_table, &[2, 0])?.is_some());
    raw(&|txn| txn.delete(sync_table, &[2, 0]).map(drop))?;
    assert!(sync::check(&store).is_err());
    assert!(sync::repair(&store)? > 0);
    sync::check(&store)?;
    let again = sync::reconcile(&store, &replica)?;
    assert_eq!(again.a.records_sent + again.b.records_sent, 0, "{again:?}");
    Ok(())
}

#[test]
fn unknown_model_names_are_refused_at_open() {
    let err = NetabaseStore::<SyncDefinition, _>::from_backend_with(
        MemoryBackend::new(),
        OpenOptions::default().sync_model("Nope"),
    )
    .err();
    assert!(matches!(&err, Some(NetabaseError::Sync(e)) if e.problem == SyncProblem::UnknownModel));
}

#[test]
fn pruned_tombstones_leave_the_tree_consistent() -> TestResult {
    let store = memory()?;
    let notes = store.open_tree::<Note>();
    notes.put_many((0..200).map(|i| note(i, "x", 0)))?;
    notes.remove_many(0..100u32)?;
    assert_eq!(notes.fingerprint::<u32>(..)?.count, 200);
    assert_eq!(
        sync::prune_tombstones(&store, std::time::Duration::from_secs(3600))?,
        0
    );
    std::thread::sleep(std::time::Duration::from_millis(5));
    assert_eq!(
        sync::prune_tombstones(&store, std::time::Duration::ZERO)?,
        100
    );
    assert_eq!(notes.fingerprint::<u32>(..)?.count, 100);
    assert_eq!(notes.version(5)?, None);
    sync::check(&store)?;
    Ok(())
}

/// Keeps the longer text; equal lengths fall back to the greater stamp.
#[derive(Clone)]
struct LongestText;

impl MergeRule for LongestText {
    fn choose(&self, local: &Version<'_>, remote: &Version<'_>) -> Choice {
        let len = |v: &Version<'_>| v.value.map_or(0, <[u8]>::len);
        match len(remote).cmp(&len(local)) {
            std::cmp::Ordering::Greater => Choice::Remote,
            std::cmp::Ordering::Less => Choice::Local,
            std::cmp::Ordering::Equal if remote.stamp > local.stamp => Choice::Remote,
            std::cmp::Ordering::Equal => Choice::Local,
        }
    }
}

#[test]
fn a_custom_rule_is_applied_identically_on_both_sides() -> TestResult {
    let (a, b) = (memory()?, memory()?);
    a.open_tree::<Note>()
        .put(note(1, "a much longer text", 0))?;
    b.open_tree::<Note>().put(note(1, "short", 1))?;
    b.open_tree::<Note>().put(note(2, "b's longer one", 1))?;
    a.open_tree::<Note>().put(note(2, "a", 2))?;
    sync::reconcile_with(&a, &b, LongestText, ReconcileOptions::default())?;
    for store in [&a, &b] {
        assert_eq!(
            store.open_tree::<Note>().get(1)?.map(|n| n.text),
            Some("a much longer text".into())
        );
        assert_eq!(
            store.open_tree::<Note>().get(2)?.map(|n| n.text),
            Some("b's longer one".into())
        );
    }
    assert_eq!(tables(&a)?, tables(&b)?);
    Ok(())
}

#[test]
fn explicit_transactions_and_batches_are_stamped_too() -> TestResult {
    let (a, b) = (memory()?, memory()?);
    let txn = a.write()?;
    txn.open_tree::<Note>().put(note(1, "in a txn", 0))?;
    txn.open_tree::<Account>().put(Account {
        id: 1,
        email: "t@example.org".into(),
    })?;
    txn.commit()?;
    // A dropped transaction leaves no sync metadata behind.
    {
        let txn = a.write()?;
        txn.open_tree::<Note>().put(note(2, "dropped", 0))?;
    }
    assert_eq!(a.open_tree::<Note>().version(2)?, None);
    sync::check(&a)?;
    let report = sync::reconcile(&a, &b)?;
    assert_eq!(report.a.records_sent, 2);
    assert_eq!(tables(&a)?, tables(&b)?);
    Ok(())
}

#[test]
fn messages_of_another_definition_are_refused() -> TestResult {
    let store = memory()?;
    let mut r = sync::Reconciler::new(&store)?;
    let foreign = sync::Message::from_bytes(&r.initiate()?)?;
    let mut foreign = foreign;
    foreign.definition = "Other".into();
    let err = r.respond(&foreign.to_bytes()?).err();
    assert!(matches!(&err, Some(NetabaseError::Sync(e)) if e.problem == SyncProblem::Protocol));
    assert!(r.respond(b"\xff\xff\xff").is_err());
    Ok(())
}

#[test]
fn a_store_without_sync_has_no_reconciler() -> TestResult {
    let store = NetabaseStore::<SyncDefinition, _>::from_backend(MemoryBackend::new())?;
    assert!(matches!(
        sync::Reconciler::new(&store).err(),
        Some(NetabaseError::Sync(e)) if e.problem == SyncProblem::NotSynced
    ));
    store.open_tree::<Local>().put(Local { id: 1 })?;
    Ok(())
}

fn stamp(millis: u64, writer: u8) -> VersionStamp {
    VersionStamp {
        hlc: Hlc { millis, counter: 0 },
        writer: WriterId([writer; 32]),
    }
}

fn account(id: u32, email: &str) -> Account {
    Account {
        id,
        email: email.into(),
    }
}

/// Writes each version with its stamp, in one transaction (a replica receiving a
/// batch) or one transaction per version.
fn deliver<B: Backend>(
    store: &NetabaseStore<SyncDefinition, B>,
    versions: &[(Account, VersionStamp)],
    one_transaction: bool,
) -> Result<(), NetabaseError> {
    let chunk = if one_transaction {
        versions.len().max(1)
    } else {
        1
    };
    for versions in versions.chunks(chunk) {
        let txn = store.write()?;
        let tree = txn.open_tree::<Account>();
        for (model, stamp) in versions {
            tree.put_stamped(model.clone(), *stamp)?;
        }
        txn.commit()?;
    }
    Ok(())
}

/// Two replicas in sync: identical tables, consistent trees, equal fingerprints, and a
/// reconciliation that moves nothing.
fn assert_in_sync<A: Backend, B: Backend>(
    a: &NetabaseStore<SyncDefinition, A>,
    b: &NetabaseStore<SyncDefinition, B>,
) -> TestResult {
    assert_eq!(tables(a)?, tables(b)?, "the stores' tables differ");
    sync::check(a)?;
    sync::check(b)?;
    assert_eq!(
        a.open_tree::<Account>().fingerprint::<u32>(..)?,
        b.open_tree::<Account>().fingerprint::<u32>(..)?
    );
    let again = sync::reconcile(a, b)?;
    assert_eq!(
        (again.messages, again.a.records_sent, again.b.records_sent),
        (1, 0, 0),
        "{again}"
    );
    Ok(())
}

/// A unique key taken under two keys by two replicas: whichever order the versions
/// arrive in, every replica ends with the same records and the same sync entries (the
/// loser's key holds a tombstone stamped with the successor of the loser's stamp,
/// whether the loser was displaced or refused), plain reconciliation keeps converging,
/// a pruned tombstone comes back the same way, and a later write to the loser's key
/// wins.
fn a_lost_unique_key_leaves_identical_sync_state<B: Backend>(
    open: impl Fn() -> Result<NetabaseStore<SyncDefinition, B>, NetabaseError>,
) -> TestResult {
    let loser = (account(1, "x@example.org"), stamp(10, 1));
    let winner = (account(2, "x@example.org"), stamp(20, 2));
    let loser_first = open()?;
    deliver(&loser_first, &[loser.clone(), winner.clone()], false)?;
    let winner_first = open()?;
    deliver(&winner_first, &[winner.clone(), loser.clone()], false)?;
    let together = open()?;
    deliver(&together, &[winner.clone(), loser.clone()], true)?;
    let together_reversed = open()?;
    deliver(&together_reversed, &[loser.clone(), winner.clone()], true)?;
    let orders = [&loser_first, &winner_first, &together, &together_reversed];
    for (order, store) in orders.into_iter().enumerate() {
        let tree = store.open_tree::<Account>();
        assert_eq!(tree.get(1)?, None);
        assert_eq!(tree.get(2)?, Some(winner.0.clone()));
        let tomb = tree.version(1)?.map(|v| (v.stamp, v.tombstone));
        assert_eq!(
            tomb,
            Some((loser.1.successor(), true)),
            "delivery order {order}"
        );
        assert_eq!(
            tree.get_by_unique_key(AccountEmailSecondaryKey("x@example.org".into()))?,
            Some(winner.0.clone())
        );
    }
    assert_in_sync(&loser_first, &winner_first)?;
    assert_in_sync(&loser_first, &together)?;
    assert_in_sync(&winner_first, &together_reversed)?;

    // A third replica that saw only the winner gets the tombstone by reconciliation;
    // the loser delivered late changes nothing there.
    let third = open()?;
    deliver(&third, std::slice::from_ref(&winner), false)?;
    sync::reconcile(&loser_first, &third)?;
    assert_in_sync(&loser_first, &third)?;
    deliver(&third, std::slice::from_ref(&loser), false)?;
    assert_in_sync(&winner_first, &third)?;
    // One that saw only the loser loses it to the tombstone.
    let fourth = open()?;
    deliver(&fourth, std::slice::from_ref(&loser), false)?;
    sync::reconcile(&winner_first, &fourth)?;
    assert_eq!(fourth.open_tree::<Account>().get(1)?, None);
    assert_in_sync(&winner_first, &fourth)?;

    // Pruned on both, the tombstone comes back the same on both if the loser is
    // offered again.
    for store in [&loser_first, &winner_first] {
        assert_eq!(sync::prune_tombstones(store, std::time::Duration::ZERO)?, 1);
    }
    assert_in_sync(&loser_first, &winner_first)?;
    deliver(&loser_first, std::slice::from_ref(&loser), false)?;
    deliver(&winner_first, std::slice::from_ref(&loser), false)?;
    assert_in_sync(&loser_first, &winner_first)?;
    assert!(
        loser_first
            .open_tree::<Account>()
            .version(1)?
            .is_some_and(|v| v.tombstone && v.stamp == loser.1.successor())
    );

    // A later write to the loser's key (another email) wins over the tombstone.
    let later = (account(1, "y@example.org"), stamp(30, 1));
    deliver(&loser_first, std::slice::from_ref(&later), false)?;
    deliver(&winner_first, std::slice::from_ref(&later), false)?;
    assert_eq!(
        winner_first.open_tree::<Account>().get(1)?,
        Some(later.0.clone())
    );
    assert_in_sync(&loser_first, &winner_first)?;
    // And an older one does not.
    deliver(
        &winner_first,
        &[(account(1, "z@example.org"), stamp(25, 3))],
        false,
    )?;
    assert_eq!(winner_first.open_tree::<Account>().get(1)?, Some(later.0));
    Ok(())
}

/// Every order of `items`.
fn permutations<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut out = Vec::new();
    for i in 0..items.len() {
        let mut rest = items.to_vec();
        let first = rest.remove(i);
        for mut tail in permutations(&rest) {
            tail.insert(0, first.clone());
            out.push(tail);
        }
    }
    out
}

/// Three versions taking one unique key under three keys, and a removal of the oldest
/// one's key made before the others: in every one of the 24 delivery orders, each
/// version in its own transaction, the replicas end with identical tables. The newest
/// holds the key; the middle one's key holds the tombstone of its loss; the removal
/// (newer than the version it removes) wins over the tombstone of that version's loss.
fn a_unique_key_taken_three_times_converges_in_every_order<B: Backend>(
    open: impl Fn() -> Result<NetabaseStore<SyncDefinition, B>, NetabaseError>,
) -> TestResult {
    #[derive(Clone)]
    enum Delivery {
        Put(Account, VersionStamp),
        Remove(u32, VersionStamp),
    }
    let versions = [
        Delivery::Put(account(1, "x@example.org"), stamp(10, 1)),
        Delivery::Remove(1, stamp(15, 1)),
        Delivery::Put(account(2, "x@example.org"), stamp(20, 2)),
        Delivery::Put(account(3, "x@example.org"), stamp(30, 3)),
    ];
    let mut first = None;
    for order in permutations(&versions) {
        let store = open()?;
        for delivery in order {
            let txn = store.write()?;
            let tree = txn.open_tree::<Account>();
            match delivery {
                Delivery::Put(model, stamp) => tree.put_stamped(model, stamp)?,
                Delivery::Remove(id, stamp) => tree.remove_stamped(id, stamp)?,
            };
            txn.commit()?;
        }
        let tree = store.open_tree::<Account>();
        let state = |id: u32| -> Result<_, NetabaseError> {
            Ok(tree.version(id)?.map(|v| (v.stamp, v.tombstone)))
        };
        assert_eq!(state(1)?, Some((stamp(15, 1), true)));
        assert_eq!(state(2)?, Some((stamp(20, 2).successor(), true)));
        assert_eq!(state(3)?, Some((stamp(30, 3), false)));
        assert_eq!(
            tree.get_by_unique_key(AccountEmailSecondaryKey("x@example.org".into()))?,
            Some(account(3, "x@example.org"))
        );
        sync::check(&store)?;
        match &first {
            None => first = Some(tables(&store)?),
            Some(expected) => assert_eq!(&tables(&store)?, expected),
        }
    }
    Ok(())
}

#[test]
fn a_lost_unique_key_leaves_identical_sync_state_in_memory() -> TestResult {
    a_lost_unique_key_leaves_identical_sync_state(memory)
}

#[test]
fn a_unique_key_taken_three_times_converges_in_every_order_in_memory() -> TestResult {
    a_unique_key_taken_three_times_converges_in_every_order(memory)
}

#[test]
fn a_unique_key_taken_three_times_converges_in_every_order_on_redb() -> TestResult {
    a_unique_key_taken_three_times_converges_in_every_order(redb)
}

#[cfg(feature = "sled")]
#[test]
fn a_unique_key_taken_three_times_converges_in_every_order_on_sled() -> TestResult {
    a_unique_key_taken_three_times_converges_in_every_order(sled)
}

#[test]
fn a_lost_unique_key_leaves_identical_sync_state_on_redb() -> TestResult {
    a_lost_unique_key_leaves_identical_sync_state(redb)
}

#[cfg(feature = "sled")]
#[test]
fn a_lost_unique_key_leaves_identical_sync_state_on_sled() -> TestResult {
    a_lost_unique_key_leaves_identical_sync_state(sled)
}
