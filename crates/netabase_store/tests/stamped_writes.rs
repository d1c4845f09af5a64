//! Writes with a given version stamp (`TreeView::put_stamped` / `remove_stamped`): the
//! greatest stamp wins on keys and on unique keys, whatever order the versions arrive
//! in, through the write pipeline (indexes, sync metadata, subscriptions).

use netabase_store::backend::memory::MemoryBackend;
use netabase_store::prelude::*;
use netabase_store::sync::{self, Hlc, StampedWrite, SyncedTree, VersionStamp, WriterId};
use netabase_store::typed::watch::{Event, Filter};
use netabase_store::{NetabaseError, NetabaseStore, OpenOptions, SyncProblem, TypedChange};

/// The schema of these tests.
#[netabase_definition_module(StampDefinition, StampKeys)]
pub mod models {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(StampDefinition)]
    /// A model with a unique key.
    pub struct Account {
        /// Primary key.
        #[primary_key]
        pub id: u32,
        /// Unique index.
        #[secondary_key(unique)]
        pub email: String,
    }

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(StampDefinition)]
    /// A model that is not synced.
    pub struct Local {
        /// Primary key.
        #[primary_key]
        pub id: u32,
    }
}

use models::*;

type Store = NetabaseStore<StampDefinition, MemoryBackend>;

fn open() -> Store {
    NetabaseStore::from_backend_with(
        MemoryBackend::new(),
        OpenOptions::default().sync_model("Account"),
    )
    .unwrap_or_else(|e| panic!("open: {e}"))
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

/// A version to apply: a put of `Account` or a removal of its key.
#[derive(Clone)]
enum Version {
    Put(Account, VersionStamp),
    Remove(u32, VersionStamp),
}

fn apply(store: &Store, versions: &[Version]) -> Result<Vec<bool>, NetabaseError> {
    let txn = store.write()?;
    let tree = txn.open_tree::<Account>();
    let mut applied = Vec::new();
    for version in versions {
        let outcome = match version.clone() {
            Version::Put(model, stamp) => tree.put_stamped(model, stamp)?,
            Version::Remove(id, stamp) => tree.remove_stamped(id, stamp)?,
        };
        applied.push(outcome.is_applied());
    }
    txn.commit()?;
    Ok(applied)
}

/// What a replica holds of `Account`: records, the unique index, sync entries.
type Contents = (
    Vec<Account>,
    Vec<Option<Account>>,
    Vec<Option<(VersionStamp, bool)>>,
);

/// Everything a replica holds of `Account`.
fn contents(store: &Store) -> Contents {
    let tree = store.open_tree::<Account>();
    let records: Vec<Account> = tree
        .iter()
        .map(|r| r.map(|(_, model)| model))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("iter: {e}"));
    let by_email = ["a@x", "b@x", "c@x"]
        .iter()
        .map(|email| {
            tree.get_by_unique_key(AccountEmailSecondaryKey(email.to_string()))
                .unwrap_or_else(|e| panic!("unique: {e}"))
        })
        .collect();
    let versions = (1..=4)
        .map(|id| {
            tree.version(id)
                .unwrap_or_else(|e| panic!("version: {e}"))
                .map(|v| (v.stamp, v.tombstone))
        })
        .collect();
    (records, by_email, versions)
}

#[test]
fn the_greatest_stamp_wins_whatever_the_order() -> Result<(), NetabaseError> {
    let versions = vec![
        Version::Put(account(1, "a@x"), stamp(10, 1)),
        Version::Put(account(1, "b@x"), stamp(20, 2)),
        Version::Put(account(1, "c@x"), stamp(20, 1)),
        Version::Remove(2, stamp(5, 3)),
        Version::Put(account(2, "c@x"), stamp(4, 3)),
        Version::Put(account(3, "a@x"), stamp(7, 2)),
    ];
    let forward = open();
    apply(&forward, &versions)?;
    let backward = open();
    let mut reversed = versions.clone();
    reversed.reverse();
    apply(&backward, &reversed)?;
    // One version at a time, each in its own transaction, in another order.
    let shuffled = open();
    for i in [2, 5, 0, 4, 1, 3] {
        apply(&shuffled, &versions[i..=i])?;
    }
    let expected = contents(&forward);
    assert_eq!(contents(&backward), expected);
    assert_eq!(contents(&shuffled), expected);
    // Key 1: stamp (20, writer 2) wins; key 2: its removal (5) beats the put (4);
    // key 3 holds a@x, freed by key 1's newer version.
    assert_eq!(expected.0, vec![account(1, "b@x"), account(3, "a@x")]);
    assert_eq!(expected.2[0], Some((stamp(20, 2), false)));
    assert_eq!(expected.2[1], Some((stamp(5, 3), true)));
    sync::check(&forward)?;
    sync::check(&backward)?;
    Ok(())
}

#[test]
fn an_older_or_equal_version_is_superseded() -> Result<(), NetabaseError> {
    let store = open();
    apply(&store, &[Version::Put(account(1, "a@x"), stamp(10, 1))])?;
    let txn = store.write()?;
    let tree = txn.open_tree::<Account>();
    let equal = tree.put_stamped(account(1, "b@x"), stamp(10, 1))?;
    assert!(matches!(equal, StampedWrite::Superseded { held } if held == stamp(10, 1)));
    let older = tree.remove_stamped(1, stamp(9, 9))?;
    assert!(matches!(older, StampedWrite::Superseded { .. }));
    txn.commit()?;
    assert_eq!(
        store.open_tree::<Account>().get(1)?,
        Some(account(1, "a@x"))
    );
    Ok(())
}

#[test]
fn a_unique_key_goes_to_the_greater_stamp() -> Result<(), NetabaseError> {
    // The holder is newer: the incoming version is not written.
    let store = open();
    apply(&store, &[Version::Put(account(1, "a@x"), stamp(10, 1))])?;
    let txn = store.write()?;
    let outcome = txn
        .open_tree::<Account>()
        .put_stamped(account(2, "a@x"), stamp(5, 2))?;
    match outcome {
        StampedWrite::UniqueKeyHeld { violation, held } => {
            assert_eq!(held, stamp(10, 1));
            assert_eq!(violation.field, "email");
        }
        other => panic!("expected UniqueKeyHeld, got {other:?}"),
    }
    txn.commit()?;
    assert_eq!(store.open_tree::<Account>().get(2)?, None);
    // Its key gets the tombstone it would have got had it arrived first and been
    // displaced: the successor of its own stamp.
    let lost = store.open_tree::<Account>().version(2)?;
    assert_eq!(
        lost.map(|v| (v.stamp, v.tombstone)),
        Some((stamp(5, 2).successor(), true))
    );
    // The holder is older: it is removed, with the successor of its stamp as its
    // tombstone's (beating it, and nothing newer).
    apply(&store, &[Version::Put(account(3, "a@x"), stamp(30, 3))])?;
    let tree = store.open_tree::<Account>();
    assert_eq!(tree.get(1)?, None);
    assert_eq!(
        tree.get_by_unique_key(AccountEmailSecondaryKey("a@x".into()))?,
        Some(account(3, "a@x"))
    );
    let tomb = tree.version(1)?.map(|v| (v.stamp, v.tombstone));
    assert_eq!(tomb, Some((stamp(10, 1).successor(), true)));
    sync::check(&store)?;
    Ok(())
}

#[test]
fn subscribers_see_stamped_writes() -> Result<(), NetabaseError> {
    let store = open();
    let watch = store.open_tree::<Account>().watch(Filter::all());
    apply(&store, &[Version::Put(account(1, "a@x"), stamp(10, 1))])?;
    apply(&store, &[Version::Remove(1, stamp(11, 2))])?;
    let mut seen = Vec::new();
    while let Some(Event::Commit(commit)) = watch.try_recv()? {
        seen.extend(commit.changes);
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(matches!(&seen[0], TypedChange::Put { new, .. } if new.email == "a@x"));
    assert!(matches!(&seen[1], TypedChange::Removed { key, .. } if key.0 == 1));
    Ok(())
}

#[test]
fn a_model_that_is_not_synced_is_refused() -> Result<(), NetabaseError> {
    let store = open();
    let txn = store.write()?;
    let refused = txn
        .open_tree::<Local>()
        .put_stamped(Local { id: 1 }, stamp(1, 1));
    match refused {
        Err(NetabaseError::Sync(e)) => assert_eq!(e.problem, SyncProblem::NotSynced),
        other => panic!("expected NotSynced, got {other:?}"),
    }
    Ok(())
}
