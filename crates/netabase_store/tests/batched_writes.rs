//! `put_many` and `remove_many` read old records and apply writes in chunks; their
//! result must equal calling `put` / `remove` one by one, repeated keys in one call and
//! calls longer than a chunk included.

mod conformance;

use std::collections::BTreeSet;

use conformance::schema::*;
use netabase_store::backend::{Backend, RawRange, collect_range};
use netabase_store::prelude::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn post(id: i64, author_id: u64) -> Post {
    Post {
        id,
        title: format!("post {id} by {author_id}"),
        author_id,
    }
}

/// Every (author, id) pair the index holds, decoded from its raw keys.
fn index_entries<B: Backend>(
    store: &NetabaseStore<TestDefinition, B>,
) -> Result<BTreeSet<Vec<u8>>, NetabaseError> {
    let txn = store.raw_backend().begin_read()?;
    let table = Post::INFO.secondary_keys[0].table;
    Ok(
        collect_range(&txn, table, RawRange::all(), Default::default())?
            .into_iter()
            .map(|(k, _)| k)
            .collect(),
    )
}

fn expected_entries<B: Backend>(
    store: &NetabaseStore<TestDefinition, B>,
) -> Result<BTreeSet<Vec<u8>>, NetabaseError> {
    store
        .open_tree::<Post>()
        .iter()
        .map(|r| {
            r.map(|(key, p)| {
                let mut k = p.author_id.to_key_bytes();
                k.extend(key.to_key_bytes());
                k
            })
        })
        .collect()
}

fn check<B: Backend>(
    batched: NetabaseStore<TestDefinition, B>,
    single: NetabaseStore<TestDefinition, B>,
) -> TestResult {
    // Longer than a chunk, with every key written three times with changing authors.
    let writes: Vec<Post> = (0..3)
        .flat_map(|round| (0..1500i64).map(move |id| post(id, ((id as u64) + round) % 7)))
        .chain((0..40).map(|id| post(id % 5, 100 + id as u64)))
        .collect();
    batched.open_tree::<Post>().put_many(writes.clone())?;
    // One by one, in one transaction (a commit per put would only be slower).
    let txn = single.write()?;
    for p in writes {
        txn.open_tree::<Post>().put(p)?;
    }
    txn.commit()?;
    let removals: Vec<PostPrimaryKey> = (0..1200i64)
        .chain([3, 3, 9999, 3])
        .map(PostPrimaryKey)
        .collect();
    let gone_batched = batched.open_tree::<Post>().remove_many(removals.clone())?;
    let mut gone_single = Vec::new();
    let txn = single.write()?;
    for key in removals {
        gone_single.push(txn.open_tree::<Post>().remove(key)?);
    }
    txn.commit()?;
    assert_eq!(gone_batched, gone_single);
    let all = |s: &NetabaseStore<TestDefinition, B>| -> Result<Vec<Post>, NetabaseError> {
        s.open_tree::<Post>()
            .iter()
            .map(|r| r.map(|(_, p)| p))
            .collect()
    };
    assert_eq!(all(&batched)?, all(&single)?);
    assert_eq!(index_entries(&batched)?, expected_entries(&batched)?);
    assert_eq!(index_entries(&single)?, expected_entries(&single)?);
    Ok(())
}

#[test]
fn memory_batched_equals_one_by_one() -> TestResult {
    check(NetabaseStore::memory()?, NetabaseStore::memory()?)
}

#[test]
fn redb_batched_equals_one_by_one() -> TestResult {
    check(NetabaseStore::temp()?, NetabaseStore::temp()?)
}

#[cfg(feature = "sled")]
#[test]
fn sled_batched_equals_one_by_one() -> TestResult {
    check(NetabaseStore::sled_temp()?, NetabaseStore::sled_temp()?)
}
