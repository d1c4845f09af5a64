//! netabase on Redis against raw Redis with the same hand-written layout, in the same
//! run, on a `redis-server` the benchmark starts itself (loopback).
//!
//! `cargo bench -p netabase_bench --bench redis`. The raw baseline stores `Item`
//! exactly as netabase does (a sorted set of keys with score 0 and a hash of values per
//! table; primary key `u64` big-endian; value the 3-byte header and postcard; index key
//! `u32` big-endian ++ primary key) and keeps its index exact, with plain commands:
//!
//! - insert: `HMGET` of the replaced values, then one `MULTI`/`EXEC` pipeline of
//!   `ZADD`/`HSET` (and `ZREM`/`ZADD` of moved index entries): 2 round trips;
//! - get: `HGET`: 1;
//! - secondary equality query: `ZRANGEBYLEX` over the index prefix, `HMGET` of the
//!   records: 2;
//! - range page: `ZRANGEBYLEX .. LIMIT 0 100`, `HMGET`: 2.

use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use netabase_bench::contenders::BenchResult;
use netabase_bench::data::schema::{
    BenchDefinition, Item, ItemGroupSecondaryKey, ItemPrimaryKey, ItemSecondaryKeys,
};
use netabase_bench::data::{self, Record};
use netabase_bench::redis_server::RedisServer;
use netabase_store::NetabaseStore;
use netabase_store::backend::redis::{RedisBackend, RedisConfig};

const N: usize = 1000;
const PAGE: usize = 100;

type Store = NetabaseStore<BenchDefinition, RedisBackend>;

fn item(r: &Record) -> Item {
    Item {
        id: r.id,
        name: r.name.clone(),
        group: r.keys[0],
    }
}

/// The value header netabase writes: format version 1, model version 0.
const HEADER: [u8; 3] = [1, 0, 0];

/// Header ++ postcard, into a reused buffer.
fn encode(item: &Item, buf: &mut Vec<u8>) -> BenchResult<()> {
    buf.clear();
    buf.extend_from_slice(&HEADER);
    let out = std::mem::take(buf);
    *buf = postcard::to_extend(item, out)?;
    Ok(())
}

fn decode(bytes: &[u8]) -> BenchResult<Item> {
    let body = bytes
        .get(HEADER.len()..)
        .ok_or("value shorter than its header")?;
    Ok(postcard::from_bytes(body)?)
}

/// `enc(secondary) ++ enc(primary)`.
fn index_key(secondary: u32, id: u64) -> Vec<u8> {
    let mut key = secondary.to_be_bytes().to_vec();
    key.extend_from_slice(&id.to_be_bytes());
    key
}

/// Raw Redis in netabase's layout under the prefix `{raw}`.
struct Raw {
    con: std::cell::RefCell<redis::Connection>,
}

const Z: &str = "{raw}:z:BenchDefinition/Item";
const H: &str = "{raw}:h:BenchDefinition/Item";
const ZG: &str = "{raw}:z:BenchDefinition/Item/group";
const HG: &str = "{raw}:h:BenchDefinition/Item/group";

impl Raw {
    fn insert_bulk(&self, items: &[Item]) -> BenchResult<()> {
        let con = &mut *self.con.borrow_mut();
        let keys: Vec<Vec<u8>> = items.iter().map(|i| i.id.to_be_bytes().to_vec()).collect();
        let old: Vec<Option<Vec<u8>>> = redis::cmd("HMGET").arg(H).arg(&keys).query(con)?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut buf = Vec::new();
        for ((item, key), old) in items.iter().zip(&keys).zip(old) {
            encode(item, &mut buf)?;
            pipe.cmd("ZADD").arg(Z).arg(0).arg(key).ignore();
            pipe.cmd("HSET").arg(H).arg(key).arg(&buf).ignore();
            let old_group = match old {
                Some(bytes) => Some(decode(&bytes)?.group),
                None => None,
            };
            if old_group != Some(item.group) {
                if let Some(g) = old_group {
                    let stale = index_key(g, item.id);
                    pipe.cmd("ZREM").arg(ZG).arg(&stale).ignore();
                    pipe.cmd("HDEL").arg(HG).arg(&stale).ignore();
                }
                let entry = index_key(item.group, item.id);
                pipe.cmd("ZADD").arg(ZG).arg(0).arg(&entry).ignore();
                pipe.cmd("HSET")
                    .arg(HG)
                    .arg(&entry)
                    .arg(&[] as &[u8])
                    .ignore();
            }
        }
        pipe.query::<()>(con)?;
        Ok(())
    }

    fn get(&self, id: u64) -> BenchResult<Option<Item>> {
        let con = &mut *self.con.borrow_mut();
        let bytes: Option<Vec<u8>> = redis::cmd("HGET")
            .arg(H)
            .arg(id.to_be_bytes().as_slice())
            .query(con)?;
        bytes.map(|b| decode(&b)).transpose()
    }

    fn by_group(&self, group: u32) -> BenchResult<Vec<Item>> {
        let con = &mut *self.con.borrow_mut();
        let mut min = vec![b'['];
        min.extend_from_slice(&group.to_be_bytes());
        let mut max = vec![b'('];
        max.extend_from_slice(&(group + 1).to_be_bytes());
        let entries: Vec<Vec<u8>> = redis::cmd("ZRANGEBYLEX")
            .arg(ZG)
            .arg(min)
            .arg(max)
            .query(con)?;
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let pks: Vec<&[u8]> = entries.iter().map(|e| &e[4..]).collect();
        let values: Vec<Option<Vec<u8>>> = redis::cmd("HMGET").arg(H).arg(&pks).query(con)?;
        values.into_iter().flatten().map(|b| decode(&b)).collect()
    }

    fn page(&self, from: u64) -> BenchResult<Vec<Item>> {
        let con = &mut *self.con.borrow_mut();
        let mut min = vec![b'['];
        min.extend_from_slice(&from.to_be_bytes());
        let keys: Vec<Vec<u8>> = redis::cmd("ZRANGEBYLEX")
            .arg(Z)
            .arg(min)
            .arg("+")
            .arg("LIMIT")
            .arg(0)
            .arg(PAGE)
            .query(con)?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<Option<Vec<u8>>> = redis::cmd("HMGET").arg(H).arg(&keys).query(con)?;
        values.into_iter().flatten().map(|b| decode(&b)).collect()
    }
}

fn flush(server: &RedisServer) -> BenchResult<()> {
    let mut con = server.connection()?;
    redis::cmd("FLUSHALL").query::<()>(&mut con)?;
    Ok(())
}

fn check<T>(r: BenchResult<T>) -> T {
    r.unwrap_or_else(|e| panic!("benchmark failed: {e}"))
}

fn bench(c: &mut Criterion) {
    let server = check(RedisServer::start());
    let records = data::records(0, N, data::groups(N));
    let items: Vec<Item> = records.iter().map(item).collect();
    let ids = data::sample_ids(&records, N, 1);
    let groups = data::sample_groups(data::groups(N), 100, 2);
    let mut sorted: Vec<u64> = records.iter().map(|r| r.id).collect();
    sorted.sort_unstable();
    // Twenty page starts spread over the keys, each with a full page after it.
    let pages: Vec<u64> = (0..20).map(|i| sorted[i * (N - PAGE) / 20]).collect();
    let open = || -> BenchResult<Store> {
        Ok(Store::with_redis_config(
            RedisConfig::new(server.url()).with_prefix("netabase"),
        )?)
    };
    let raw = Raw {
        con: std::cell::RefCell::new(check(server.connection())),
    };

    let mut group = c.benchmark_group("redis_insert_bulk");
    group.bench_function(BenchmarkId::new("netabase_redis", N), |b| {
        b.iter_batched(
            || {
                check(flush(&server));
                (check(open()), items.clone())
            },
            |(store, items)| {
                check(
                    store
                        .open_tree::<Item>()
                        .put_many(items)
                        .map_err(Into::into),
                )
            },
            BatchSize::PerIteration,
        );
    });
    group.bench_function(BenchmarkId::new("raw_redis", N), |b| {
        b.iter_batched(
            || check(flush(&server)),
            |()| check(raw.insert_bulk(&items)),
            BatchSize::PerIteration,
        );
    });
    group.finish();

    // The read workloads run on both layouts filled with the same items.
    check(flush(&server));
    let store = check(open());
    check(
        store
            .open_tree::<Item>()
            .put_many(items.clone())
            .map_err(Into::into),
    );
    check(raw.insert_bulk(&items));
    let tree = store.open_tree::<Item>();

    let mut group = c.benchmark_group("redis_get");
    group.bench_function(BenchmarkId::new("netabase_redis", N), |b| {
        b.iter(|| {
            let found = ids
                .iter()
                .filter(|id| check(tree.get(ItemPrimaryKey(**id)).map_err(Into::into)).is_some())
                .count();
            assert_eq!(found, N);
        });
    });
    group.bench_function(BenchmarkId::new("raw_redis", N), |b| {
        b.iter(|| {
            let found = ids
                .iter()
                .filter(|id| check(raw.get(**id)).is_some())
                .count();
            assert_eq!(found, N);
        });
    });
    group.finish();

    let expected: usize = groups.iter().map(|g| check(raw.by_group(*g)).len()).sum();
    let mut group = c.benchmark_group("redis_secondary_eq");
    group.bench_function(BenchmarkId::new("netabase_redis", N), |b| {
        b.iter(|| {
            let found: usize = groups
                .iter()
                .map(|g| {
                    let key = ItemSecondaryKeys::Group(ItemGroupSecondaryKey(*g));
                    check(tree.get_by_secondary_key(key).map_err(Into::into)).len()
                })
                .sum();
            assert_eq!(found, expected);
        });
    });
    group.bench_function(BenchmarkId::new("raw_redis", N), |b| {
        b.iter(|| {
            let found: usize = groups.iter().map(|g| check(raw.by_group(*g)).len()).sum();
            assert_eq!(found, expected);
        });
    });
    group.finish();

    let mut group = c.benchmark_group("redis_range");
    group.bench_function(BenchmarkId::new("netabase_redis", N), |b| {
        b.iter(|| {
            let found: usize = pages
                .iter()
                .map(|from| {
                    tree.range(ItemPrimaryKey(*from)..)
                        .take(PAGE)
                        .fold(0, |n, r| {
                            check(r.map_err(Into::into));
                            n + 1
                        })
                })
                .sum();
            assert_eq!(found, 20 * PAGE);
        });
    });
    group.bench_function(BenchmarkId::new("raw_redis", N), |b| {
        b.iter(|| {
            let found: usize = pages.iter().map(|from| check(raw.page(*from)).len()).sum();
            assert_eq!(found, 20 * PAGE);
        });
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench
}
criterion_main!(benches);
