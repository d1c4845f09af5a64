//! The browser benchmark: netabase's asynchronous API on IndexedDB against raw
//! IndexedDB driven through `web-sys` with the same hand-written layout (the same two
//! object stores, the same key bytes, the same value bytes), in the same page and the
//! same run, in headless Chromium.
//!
//! It is a benchmark, not a test: the test suite does not run it. Run it with
//! `scripts/bench-browser.sh` (a release build), which prints the table of medians and
//! ratios that `docs/benchmarks.md` quotes. The one check it makes is that both
//! contenders wrote byte-identical databases and read back the same records.
#![cfg(all(target_arch = "wasm32", feature = "indexeddb"))]

use netabase_store::backend::indexeddb::IndexedDbBackend;
use netabase_store::nonblocking::AsyncStore;
use netabase_store::prelude::*;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::{console_log, wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// The benchmark's schema: the `Item` model of the native benchmarks.
#[netabase_definition_module(BenchDefinition, BenchKeys)]
pub mod schema {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    /// A record with a `u64` primary key, a short name and one non-unique index.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(BenchDefinition)]
    pub struct Item {
        /// The primary key.
        #[primary_key]
        pub id: u64,
        /// A 16–24 byte name.
        pub name: String,
        /// A non-unique secondary key; about ten records share each value.
        #[secondary_key]
        pub group: u32,
    }
}
use schema::*;

type Boxed = Box<dyn std::error::Error>;
type Store = AsyncStore<BenchDefinition, IndexedDbBackend>;

/// Records per workload.
const N: usize = 10_000;
/// Secondary equality queries per run of `secondary_eq`.
const QUERIES: usize = 100;
/// Repetitions; each line reports medians.
const ROUNDS: usize = 15;

fn fail(e: impl std::fmt::Display) -> ! {
    panic!("{e}")
}

/// `performance.now()`, in milliseconds.
fn now() -> f64 {
    let global = js_sys::global();
    let performance = js_sys::Reflect::get(&global, &JsValue::from_str("performance"))
        .unwrap_or_else(|_| fail("no performance object"));
    let now = js_sys::Reflect::get(&performance, &JsValue::from_str("now"))
        .ok()
        .and_then(|f| wasm_bindgen::JsCast::dyn_into::<js_sys::Function>(f).ok())
        .unwrap_or_else(|| fail("no performance.now"));
    now.call0(&performance)
        .ok()
        .and_then(|v| v.as_f64())
        .unwrap_or_else(|| fail("performance.now failed"))
}

/// A deterministic generator (xorshift64*), so every run uses the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// `N` records with distinct random ids, 16–24 byte names and `N / 10` groups; the
/// ids in a shuffled order for the gets; the groups the queries ask for.
fn data() -> (Vec<Item>, Vec<u64>, Vec<u32>) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut seen = std::collections::BTreeSet::new();
    let mut items = Vec::with_capacity(N);
    let groups = (N / 10) as u64;
    while items.len() < N {
        let id = rng.next();
        if !seen.insert(id) {
            continue;
        }
        let len = 16 + (rng.next() % 9) as usize;
        let name: String = (0..len)
            .map(|_| char::from(b'a' + (rng.next() % 26) as u8))
            .collect();
        items.push(Item {
            id,
            name,
            group: (rng.next() % groups) as u32,
        });
    }
    let mut order: Vec<u64> = items.iter().map(|i| i.id).collect();
    for i in (1..order.len()).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    let queries = (0..QUERIES).map(|_| (rng.next() % groups) as u32).collect();
    (items, order, queries)
}

/// Raw IndexedDB through `web-sys`, hand-written with netabase's layout: one object
/// store `entries` whose keys are the table name, a zero byte and the encoded key; one
/// store `tables` naming the tables written to. Primary key: big-endian `u64`; value:
/// the 3-byte netabase header (format 1, model version 0) then postcard; index key: big-endian `u32` ++ big-endian
/// `u64`, empty value. Requests are issued together and only the last one awaited,
/// as a careful hand-written program would.
mod raw {
    use js_sys::{Array, Function, Promise, Uint8Array};
    use serde::{Deserialize, Serialize};
    use wasm_bindgen::closure::Closure;
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_futures::JsFuture;
    use web_sys::{
        IdbDatabase, IdbKeyRange, IdbObjectStore, IdbOpenDbRequest, IdbRequest, IdbTransaction,
        IdbTransactionMode,
    };

    pub const PRIMARY: &str = "BenchDefinition/Item";
    pub const INDEX: &str = "BenchDefinition/Item/group";
    const ENTRIES: &str = "entries";
    const TABLES: &str = "tables";

    /// The record, serialized as netabase serializes its model.
    #[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
    pub struct Record {
        pub id: u64,
        pub name: String,
        pub group: u32,
    }

    pub type Res<T> = Result<T, JsValue>;

    fn full(table: &str, key: &[u8]) -> Uint8Array {
        let mut b = Vec::with_capacity(table.len() + 1 + key.len());
        b.extend_from_slice(table.as_bytes());
        b.push(0);
        b.extend_from_slice(key);
        Uint8Array::from(b.as_slice())
    }

    fn primary_key(id: u64) -> Uint8Array {
        full(PRIMARY, &id.to_be_bytes())
    }

    fn index_key(group: u32, id: u64) -> Uint8Array {
        let mut k = [0u8; 12];
        k[..4].copy_from_slice(&group.to_be_bytes());
        k[4..].copy_from_slice(&id.to_be_bytes());
        full(INDEX, &k)
    }

    /// The key range of every key of `table` that starts with `prefix`.
    fn prefix_range(table: &str, prefix: &[u8]) -> Res<IdbKeyRange> {
        let lower = full(table, prefix);
        let mut upper = lower.to_vec();
        // The prefixes used here never end in 0xff.
        if let Some(last) = upper.last_mut() {
            *last += 1;
        }
        IdbKeyRange::bound_with_lower_open_and_upper_open(
            &lower,
            &Uint8Array::from(upper.as_slice()),
            false,
            true,
        )
    }

    fn table_range(table: &str) -> Res<IdbKeyRange> {
        let lower = full(table, &[]);
        let mut upper = lower.to_vec();
        if let Some(last) = upper.last_mut() {
            *last = 1;
        }
        IdbKeyRange::bound_with_lower_open_and_upper_open(
            &lower,
            &Uint8Array::from(upper.as_slice()),
            false,
            true,
        )
    }

    fn encode(r: &Record) -> Res<Vec<u8>> {
        let header = vec![1u8, 0, 0];
        postcard::to_extend(r, header).map_err(|e| JsValue::from_str(&e.to_string()))
    }

    fn decode(bytes: &[u8]) -> Res<Record> {
        if bytes.len() < 3 || bytes[..3] != [1, 0, 0] {
            return Err(JsValue::from_str("bad header"));
        }
        postcard::from_bytes(&bytes[3..]).map_err(|e| JsValue::from_str(&e.to_string()))
    }

    fn bytes(v: &JsValue) -> Vec<u8> {
        Uint8Array::new(v).to_vec()
    }

    /// Settles with the request's result once it is done.
    async fn wait(request: &IdbRequest) -> Res<JsValue> {
        let promise = Promise::new(&mut |resolve: Function, reject: Function| {
            request.set_onsuccess(Some(&resolve));
            request.set_onerror(Some(&reject));
        });
        JsFuture::from(promise).await?;
        request.result()
    }

    /// Settles once the transaction has committed.
    fn completion(txn: &IdbTransaction) -> JsFuture {
        JsFuture::from(Promise::new(&mut |resolve: Function, reject: Function| {
            txn.set_oncomplete(Some(&resolve));
            txn.set_onabort(Some(&reject));
        }))
    }

    pub async fn delete(name: &str) -> Res<()> {
        let factory: web_sys::IdbFactory =
            js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("indexedDB"))?.dyn_into()?;
        let request = factory.delete_database(name)?;
        wait(&request).await.map(drop)
    }

    pub async fn open(name: &str) -> Res<IdbDatabase> {
        let factory: web_sys::IdbFactory =
            js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("indexedDB"))?.dyn_into()?;
        let request: IdbOpenDbRequest = factory.open_with_u32(name, 1)?;
        let upgrade = Closure::<dyn FnMut(web_sys::Event)>::new({
            let request = request.clone();
            move |_| {
                if let Ok(db) = request.result().and_then(|r| r.dyn_into::<IdbDatabase>()) {
                    let _ = db.create_object_store(ENTRIES);
                    let _ = db.create_object_store(TABLES);
                }
            }
        });
        request.set_onupgradeneeded(Some(upgrade.as_ref().unchecked_ref()));
        let db = wait(&request).await?.dyn_into::<IdbDatabase>()?;
        request.set_onupgradeneeded(None);
        Ok(db)
    }

    fn txn(db: &IdbDatabase, mode: IdbTransactionMode) -> Res<IdbTransaction> {
        let stores = Array::of2(&JsValue::from_str(ENTRIES), &JsValue::from_str(TABLES));
        db.transaction_with_str_sequence_and_mode(&stores, mode)
    }

    fn register(tables: &IdbObjectStore, table: &str) -> Res<IdbRequest> {
        tables.put_with_key(&JsValue::TRUE, &Uint8Array::from(table.as_bytes()))
    }

    /// Upserts every record in one transaction and keeps the index exact: the value
    /// each put replaces is read in the same pass (IndexedDB's `put` does not return
    /// it), and a changed group moves its index entry.
    pub async fn insert_bulk(db: &IdbDatabase, records: &[Record]) -> Res<()> {
        let txn = txn(db, IdbTransactionMode::Readwrite)?;
        let done = completion(&txn);
        let entries = txn.object_store(ENTRIES)?;
        let tables = txn.object_store(TABLES)?;
        let mut olds = Vec::with_capacity(records.len());
        for r in records {
            let key = primary_key(r.id);
            olds.push(entries.get(&key)?);
            entries.put_with_key(&Uint8Array::from(encode(r)?.as_slice()), &key)?;
        }
        let last = register(&tables, PRIMARY)?;
        wait(&last).await?;
        let empty = Uint8Array::new_with_length(0);
        for (r, old) in records.iter().zip(&olds) {
            let old = old.result()?;
            if !old.is_undefined() {
                let old = decode(&bytes(&old))?;
                if old.group == r.group {
                    continue;
                }
                entries.delete(&index_key(old.group, r.id))?;
            }
            entries.put_with_key(&empty, &index_key(r.group, r.id))?;
        }
        register(&tables, INDEX)?;
        done.await.map(drop)
    }

    /// Each of `ids` read and decoded in turn, in one read transaction; returns the
    /// total length of the names found.
    pub async fn get_each(db: &IdbDatabase, ids: &[u64]) -> Res<usize> {
        let txn = txn(db, IdbTransactionMode::Readonly)?;
        let entries = txn.object_store(ENTRIES)?;
        let mut total = 0;
        for id in ids {
            let v = wait(&entries.get(&primary_key(*id))?).await?;
            if !v.is_undefined() {
                total += decode(&bytes(&v))?.name.len();
            }
        }
        Ok(total)
    }

    /// Every one of `ids` requested at once, in one read transaction.
    pub async fn get_many(db: &IdbDatabase, ids: &[u64]) -> Res<usize> {
        let txn = txn(db, IdbTransactionMode::Readonly)?;
        let entries = txn.object_store(ENTRIES)?;
        let requests = ids
            .iter()
            .map(|id| entries.get(&primary_key(*id)))
            .collect::<Res<Vec<_>>>()?;
        if let Some(last) = requests.last() {
            wait(last).await?;
        }
        let mut total = 0;
        for r in &requests {
            let v = r.result()?;
            if !v.is_undefined() {
                total += decode(&bytes(&v))?.name.len();
            }
        }
        Ok(total)
    }

    /// The records of each group, one read transaction per query: the index entries'
    /// keys, then the records they name. Returns the number of records found.
    pub async fn secondary_eq(db: &IdbDatabase, groups: &[u32]) -> Res<usize> {
        let mut found = 0;
        for group in groups {
            let txn = txn(db, IdbTransactionMode::Readonly)?;
            let entries = txn.object_store(ENTRIES)?;
            let range = prefix_range(INDEX, &group.to_be_bytes())?;
            let keys = wait(&entries.get_all_keys_with_key(&range)?).await?;
            let keys = Array::from(&keys);
            let skip = INDEX.len() + 1 + 4;
            let mut requests = Vec::with_capacity(keys.length() as usize);
            for k in keys.iter() {
                let k = bytes(&k);
                requests.push(entries.get(&full(PRIMARY, &k[skip..]))?);
            }
            if let Some(last) = requests.last() {
                wait(last).await?;
            }
            for r in &requests {
                let v = r.result()?;
                if !v.is_undefined() && decode(&bytes(&v))?.group == *group {
                    found += 1;
                }
            }
        }
        Ok(found)
    }

    /// Every record in primary-key order, decoded; returns how many.
    pub async fn iterate(db: &IdbDatabase) -> Res<usize> {
        let txn = txn(db, IdbTransactionMode::Readonly)?;
        let entries = txn.object_store(ENTRIES)?;
        let range = table_range(PRIMARY)?;
        let keys = entries.get_all_keys_with_key(&range)?;
        let values = entries.get_all_with_key(&range)?;
        wait(&values).await?;
        let (keys, values) = (Array::from(&keys.result()?), Array::from(&values.result()?));
        let skip = PRIMARY.len() + 1;
        let mut n = 0;
        for (k, v) in keys.iter().zip(values.iter()) {
            let k = bytes(&k);
            let id = u64::from_be_bytes(
                k[skip..]
                    .try_into()
                    .map_err(|_| JsValue::from_str("bad key"))?,
            );
            let r = decode(&bytes(&v))?;
            if r.id == id {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Every key and value of the database, both stores, for comparing layouts.
    pub async fn dump(db: &IdbDatabase) -> Res<Vec<(Vec<u8>, Vec<u8>)>> {
        let txn = txn(db, IdbTransactionMode::Readonly)?;
        let mut out = Vec::new();
        for store in [ENTRIES, TABLES] {
            let s = txn.object_store(store)?;
            let keys = s.get_all_keys()?;
            let values = s.get_all()?;
            wait(&values).await?;
            for (k, v) in Array::from(&keys.result()?)
                .iter()
                .zip(Array::from(&values.result()?).iter())
            {
                let v = if v.is_instance_of::<Uint8Array>() {
                    bytes(&v)
                } else {
                    vec![u8::from(v.is_truthy())]
                };
                out.push((bytes(&k), v));
            }
        }
        Ok(out)
    }
}

/// The workloads, in the order each round runs them.
#[derive(Clone, Copy, Debug)]
enum Workload {
    InsertBulk,
    GetEach,
    GetMany,
    SecondaryEq,
    Iterate,
}

const WORKLOADS: [(Workload, &str); 5] = [
    (
        Workload::InsertBulk,
        "insert_bulk: 10,000 upserts, one transaction",
    ),
    (
        Workload::GetEach,
        "get_each: 10,000 random gets awaited one by one, one transaction",
    ),
    (
        Workload::GetMany,
        "get_many: 10,000 random gets issued together, one transaction",
    ),
    (
        Workload::SecondaryEq,
        "secondary_eq: 100 equality queries (~10 records each), a transaction each",
    ),
    (
        Workload::Iterate,
        "iterate: 10,000 records in key order, decoded",
    ),
];

/// The data every workload uses.
struct Data {
    items: Vec<Item>,
    records: Vec<raw::Record>,
    order: Vec<u64>,
    groups: Vec<u32>,
}

/// One workload through netabase; returns a figure both contenders must agree on.
async fn netabase(w: Workload, store: &Store, data: &Data) -> Result<usize, Boxed> {
    let tree = store.open_tree::<Item>();
    Ok(match w {
        Workload::InsertBulk => {
            let txn = store.write().await?;
            txn.open_tree::<Item>().put_many(data.items.clone()).await?;
            txn.commit().await?;
            data.items.len()
        }
        Workload::GetEach => {
            let txn = store.read().await?;
            let view = txn.open_tree::<Item>();
            let mut total = 0;
            for id in &data.order {
                if let Some(item) = view.get(ItemPrimaryKey(*id)).await? {
                    total += item.name.len();
                }
            }
            total
        }
        Workload::GetMany => tree
            .get_many(data.order.iter().map(|id| ItemPrimaryKey(*id)))
            .await?
            .iter()
            .flatten()
            .map(|i| i.name.len())
            .sum(),
        Workload::SecondaryEq => {
            let mut found = 0;
            for group in &data.groups {
                found += tree
                    .get_by_secondary_key(ItemSecondaryKeys::Group(ItemGroupSecondaryKey(*group)))
                    .await?
                    .len();
            }
            found
        }
        Workload::Iterate => tree.iter().await?.len(),
    })
}

/// One workload through raw IndexedDB.
async fn raw(w: Workload, db: &web_sys::IdbDatabase, data: &Data) -> Result<usize, Boxed> {
    match w {
        Workload::InsertBulk => raw::insert_bulk(db, &data.records)
            .await
            .map(|()| data.records.len()),
        Workload::GetEach => raw::get_each(db, &data.order).await,
        Workload::GetMany => raw::get_many(db, &data.order).await,
        Workload::SecondaryEq => raw::secondary_eq(db, &data.groups).await,
        Workload::Iterate => raw::iterate(db).await,
    }
    .map_err(js)
}

/// The per-round times of one workload, both contenders.
#[derive(Default)]
struct Line {
    netabase: Vec<f64>,
    raw: Vec<f64>,
    /// netabase ÷ raw of each round (the two ran back to back).
    ratios: Vec<f64>,
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn js(e: JsValue) -> Boxed {
    format!("{e:?}").into()
}

async fn fresh(round: usize) -> Result<(Store, web_sys::IdbDatabase), Boxed> {
    let (ours, theirs) = (
        format!("netabase-bench-{round}"),
        format!("raw-bench-{round}"),
    );
    IndexedDbBackend::delete(&ours).await?;
    raw::delete(&theirs).await.map_err(js)?;
    let store = AsyncStore::open(IndexedDbBackend::open(&ours).await?).await?;
    let db = raw::open(&theirs).await.map_err(js)?;
    Ok((store, db))
}

/// One round: fresh databases, then every workload, the two contenders back to back
/// (which one goes first alternates by round and by workload).
async fn round(n: usize, lines: &mut [Line], data: &Data) -> Result<(), Boxed> {
    let (store, db) = fresh(n).await?;
    for (i, ((w, _), line)) in WORKLOADS.iter().zip(lines.iter_mut()).enumerate() {
        let mut times = [0.0; 2];
        let mut figures = [0; 2];
        let raw_first = (n + i) % 2 == 1;
        for turn in 0..2 {
            let ours = (turn == 0) != raw_first;
            let start = now();
            let figure = if ours {
                netabase(*w, &store, data).await?
            } else {
                raw(*w, &db, data).await?
            };
            times[usize::from(!ours)] = now() - start;
            figures[usize::from(!ours)] = figure;
        }
        assert_eq!(figures[0], figures[1], "{w:?}: the contenders disagree");
        line.netabase.push(times[0]);
        line.raw.push(times[1]);
        line.ratios.push(times[0] / times[1]);
    }
    if n == 0 {
        // Both contenders wrote the same bytes under the same keys.
        let ours = raw::open(&format!("netabase-bench-{n}"))
            .await
            .map_err(js)?;
        let mut a = raw::dump(&ours).await.map_err(js)?;
        let b = raw::dump(&db).await.map_err(js)?;
        // netabase's own meta table is the one difference.
        a.retain(|(k, _)| !k.starts_with(b"__netabase"));
        assert_eq!(a.len(), b.len(), "entry counts differ");
        if let Some((x, y)) = a.iter().zip(&b).find(|(x, y)| x != y) {
            panic!("the raw layout differs from netabase's: {x:?} against {y:?}");
        }
        ours.close();
    }
    db.close();
    store.raw_backend().close();
    Ok(())
}

#[wasm_bindgen_test]
async fn browser_benchmark() {
    let info = <Item as NetabaseModelTrait<BenchDefinition>>::INFO;
    assert_eq!(info.table, raw::PRIMARY);
    assert_eq!(info.secondary_keys[0].table, raw::INDEX);
    let (items, order, groups) = data();
    let records = items
        .iter()
        .map(|i| raw::Record {
            id: i.id,
            name: i.name.clone(),
            group: i.group,
        })
        .collect();
    let data = Data {
        items,
        records,
        order,
        groups,
    };
    let mut lines: Vec<Line> = WORKLOADS.iter().map(|_| Line::default()).collect();
    for n in 0..ROUNDS {
        round(n, &mut lines, &data)
            .await
            .unwrap_or_else(|e| fail(e));
    }
    console_log!(
        "| workload | netabase (ms) | raw IndexedDB (ms) | ratio of medians | median ratio (min–max) |"
    );
    console_log!("|---|---:|---:|---:|---:|");
    for ((_, name), line) in WORKLOADS.iter().zip(&lines) {
        let (a, b) = (median(&line.netabase), median(&line.raw));
        let lo = line.ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = line.ratios.iter().copied().fold(0.0, f64::max);
        console_log!(
            "| {name} | {a:.1} | {b:.1} | {:.2} | {:.2} ({lo:.2}–{hi:.2}) |",
            a / b,
            median(&line.ratios)
        );
    }
    console_log!("({ROUNDS} rounds; in each, the two contenders ran each workload back to back)");
}
