//! The asynchronous conformance suite on IndexedDB, in headless Chromium
//! (`scripts/test.sh` runs it through wasm-bindgen-test), and the checks that only
//! IndexedDB needs: a write transaction held across an unrelated `.await` is refused
//! with a typed error and commits nothing; data survives reopening the database. The
//! links suite (`tests/async_links`) runs here too.
#![cfg(all(target_arch = "wasm32", feature = "indexeddb"))]

#[macro_use]
mod async_conformance;
#[macro_use]
mod async_links;

use std::cell::Cell;

use async_conformance::schema::*;
use netabase_store::backend::indexeddb::IndexedDbBackend;
use netabase_store::nonblocking::{AsyncBackend, AsyncStore};
use netabase_store::prelude::*;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

type Boxed = Box<dyn std::error::Error>;
type Store = AsyncStore<TestDefinition, IndexedDbBackend>;

thread_local! {
    static NEXT: Cell<u32> = const { Cell::new(0) };
}

/// A fresh, empty database with a name of its own.
async fn store() -> Result<Store, Boxed> {
    let n = NEXT.with(|c| {
        c.set(c.get() + 1);
        c.get()
    });
    let name = format!("netabase-test-{}-{n}", js_sys::Date::now());
    IndexedDbBackend::delete(&name).await?;
    Ok(AsyncStore::open(IndexedDbBackend::open(&name).await?).await?)
}

async_conformance_suite!(wasm_bindgen_test, store);

/// The links suite, on a fresh database of its own schema.
mod links {
    use super::*;
    use async_links::schema::rules::RulesDefinition;

    async fn store() -> Result<AsyncStore<RulesDefinition, IndexedDbBackend>, Boxed> {
        let n = NEXT.with(|c| {
            c.set(c.get() + 1);
            c.get()
        });
        let name = format!("netabase-links-{}-{n}", js_sys::Date::now());
        IndexedDbBackend::delete(&name).await?;
        Ok(AsyncStore::open(IndexedDbBackend::open(&name).await?).await?)
    }

    async_links_suite!(wasm_bindgen_test, store);
}

/// Waits for a timer: an `.await` on something other than the store, after which
/// IndexedDB has ended every transaction that had no request pending.
async fn unrelated_await() {
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        let set_timeout = js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("setTimeout"))
            .ok()
            .and_then(|f| wasm_bindgen::JsCast::dyn_into::<js_sys::Function>(f).ok());
        if let Some(set_timeout) = set_timeout {
            let _ = set_timeout.call2(&JsValue::NULL, &resolve, &JsValue::from(0));
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

fn fail(e: impl std::fmt::Display) -> ! {
    panic!("{e}")
}

#[wasm_bindgen_test]
async fn write_txn_held_across_an_unrelated_await_is_refused_and_commits_nothing() {
    let store = store().await.unwrap_or_else(|e| fail(e));
    let users = store.open_tree::<User>();
    users
        .put(user(1, "before@x", 1))
        .await
        .unwrap_or_else(|e| fail(e));

    let txn = store.write().await.unwrap_or_else(|e| fail(e));
    let view = txn.open_tree::<User>();
    view.put(user(2, "first@x", 2))
        .await
        .unwrap_or_else(|e| fail(e));
    view.remove(UserPrimaryKey(1))
        .await
        .unwrap_or_else(|e| fail(e));
    // The unrelated await: a timer, then another task's write. IndexedDB runs
    // read-write transactions over the same stores one after the other, so once that
    // write is done, this transaction has ended (committed, were it not aborted).
    unrelated_await().await;
    let other = store.clone();
    other
        .open_tree::<Post>()
        .put(Post {
            id: 1,
            title: "another task".into(),
            author_id: 9,
        })
        .await
        .unwrap_or_else(|e| fail(e));
    let refused = view.put(user(3, "second@x", 3)).await;
    assert!(
        matches!(refused, Err(NetabaseError::TransactionInactive(_))),
        "the write after the unrelated await must be refused, got {refused:?}"
    );
    let committed = txn.commit().await;
    assert!(
        matches!(committed, Err(NetabaseError::TransactionInactive(_))),
        "the commit must be refused, got {committed:?}"
    );
    // Nothing of the transaction was committed: not the put, not the remove.
    assert_eq!(
        users
            .get(UserPrimaryKey(2))
            .await
            .unwrap_or_else(|e| fail(e)),
        None
    );
    assert_eq!(
        users
            .get(UserPrimaryKey(1))
            .await
            .unwrap_or_else(|e| fail(e)),
        Some(user(1, "before@x", 1))
    );
    assert_eq!(users.len().await.unwrap_or_else(|e| fail(e)), 1);
    assert_eq!(
        store
            .open_tree::<Post>()
            .len()
            .await
            .unwrap_or_else(|e| fail(e)),
        1
    );
    // And the store goes on working.
    users
        .put(user(4, "after@x", 4))
        .await
        .unwrap_or_else(|e| fail(e));
    assert_eq!(users.len().await.unwrap_or_else(|e| fail(e)), 2);
}

#[wasm_bindgen_test]
async fn a_write_txn_used_without_pause_commits_everything() {
    let store = store().await.unwrap_or_else(|e| fail(e));
    let txn = store.write().await.unwrap_or_else(|e| fail(e));
    let view = txn.open_tree::<User>();
    for i in 0..20 {
        view.put(user(i, &format!("{i}@x"), 1))
            .await
            .unwrap_or_else(|e| fail(e));
        // Reads between writes keep the transaction busy, not idle.
        assert!(
            view.get(UserPrimaryKey(i))
                .await
                .unwrap_or_else(|e| fail(e))
                .is_some()
        );
    }
    let changes = txn.commit().await.unwrap_or_else(|e| fail(e));
    assert_eq!(changes.len(), 20);
    assert_eq!(
        store
            .open_tree::<User>()
            .len()
            .await
            .unwrap_or_else(|e| fail(e)),
        20
    );
}

#[wasm_bindgen_test]
async fn data_survives_reopening_the_database() {
    let name = format!("netabase-reopen-{}", js_sys::Date::now());
    IndexedDbBackend::delete(&name)
        .await
        .unwrap_or_else(|e| fail(e));
    {
        let backend = IndexedDbBackend::open(&name)
            .await
            .unwrap_or_else(|e| fail(e));
        let store = AsyncStore::<TestDefinition, _>::open(backend.clone())
            .await
            .unwrap_or_else(|e| fail(e));
        store
            .open_tree::<User>()
            .put_many([user(1, "a@x", 30), user(2, "b@x", 30)])
            .await
            .unwrap_or_else(|e| fail(e));
        backend.close();
    }
    let store = AsyncStore::<TestDefinition, _>::open(
        IndexedDbBackend::open(&name)
            .await
            .unwrap_or_else(|e| fail(e)),
    )
    .await
    .unwrap_or_else(|e| fail(e));
    assert!(store.capabilities().persistent);
    let by_age = store
        .open_tree::<User>()
        .get_by_secondary_key(UserSecondaryKeys::Age(UserAgeSecondaryKey(30)))
        .await
        .unwrap_or_else(|e| fail(e));
    assert_eq!(by_age, vec![user(1, "a@x", 30), user(2, "b@x", 30)]);
}

#[wasm_bindgen_test]
async fn binary_keys_compare_bytewise() {
    // Raw keys whose bytewise order differs from their order as numbers or strings
    // would be: IndexedDB must return them in byte order.
    let store = store().await.unwrap_or_else(|e| fail(e));
    let backend = store.raw_backend();
    let txn = backend.begin_write().await.unwrap_or_else(|e| fail(e));
    let keys: [&[u8]; 6] = [
        &[0xff],
        &[],
        &[0x00, 0x01],
        &[0x00],
        &[0x80, 0x00],
        &[0x7f, 0xff, 0xff],
    ];
    use netabase_store::nonblocking::AsyncWriteTxn;
    txn.put_each("raw", keys.iter().map(|k| (k.to_vec(), vec![1])).collect())
        .await
        .unwrap_or_else(|e| fail(e));
    txn.commit().await.unwrap_or_else(|e| fail(e));
    let read = backend.begin_read().await.unwrap_or_else(|e| fail(e));
    use netabase_store::nonblocking::AsyncReadTxn;
    let got: Vec<Vec<u8>> = read
        .range(
            "raw",
            netabase_store::backend::RawRange::all(),
            netabase_store::backend::Direction::Forward,
            None,
        )
        .await
        .unwrap_or_else(|e| fail(e))
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let mut expected: Vec<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
    expected.sort();
    assert_eq!(got, expected);
}
