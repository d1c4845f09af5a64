//! Shared by the reliability suites (`crash_loop`, `fuzz_decoders`, `corruption`): a
//! small schema whose transactions move unique and non-unique secondary keys, the state
//! the store must hold after exactly `k` crash-loop commits, and a checker that lists
//! every way a store differs from it (records and raw index tables).
//!
//! The checker returns its findings instead of asserting, so that a test can prove it
//! catches an injected violation.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use netabase_store::backend::{Backend, Direction, RawRange, WriteTxn, collect_range};
use netabase_store::prelude::*;

#[netabase_definition_module(CrashDefinition, CrashKeys)]
pub mod models {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    /// A user whose unique email and non-unique age change with every write.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(CrashDefinition)]
    pub struct User {
        #[primary_key]
        pub id: u64,
        pub name: String,
        #[secondary_key(unique)]
        pub email: String,
        #[secondary_key]
        pub age: u32,
    }

    /// A post whose author (a non-unique secondary key) changes with every write.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(CrashDefinition)]
    pub struct Post {
        #[primary_key]
        pub id: u64,
        pub title: String,
        #[secondary_key]
        pub author: u64,
    }

    /// The number of the last committed crash-loop transaction (one record, id 0).
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(CrashDefinition)]
    pub struct Counter {
        #[primary_key]
        pub id: u64,
        pub n: u64,
    }
}

pub use models::*;

pub type Store<B> = NetabaseStore<CrashDefinition, B>;
pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Users the crash loop cycles through.
pub const USERS: u64 = 16;
/// Posts the crash loop cycles through.
pub const POSTS: u64 = 8;

/// The user written by crash-loop transaction `n` (n ≥ 1): every field is a function of
/// `n`, and both secondary keys move on every write.
pub fn user_at(n: u64) -> User {
    let id = n % USERS;
    User {
        id,
        name: format!("user {id} at {n}"),
        email: format!("u{id}-{n}@x"),
        age: (n % 7) as u32,
    }
}

/// Whether crash-loop transaction `n` removes its post instead of writing it.
pub fn removes_post(n: u64) -> bool {
    n.is_multiple_of(3)
}

/// The post written by crash-loop transaction `n` (unless [`removes_post`]).
pub fn post_at(n: u64) -> Post {
    let id = n % POSTS;
    Post {
        id,
        title: format!("post {id} at {n}"),
        author: (n * 5) % USERS,
    }
}

/// Commits crash-loop transaction `n`: one user, one post (written or removed) and the
/// counter, in one write transaction.
pub fn commit_step<B: Backend>(store: &Store<B>, n: u64) -> NetabaseResult<()> {
    let txn = store.write()?;
    txn.open_tree::<User>().put(user_at(n))?;
    let posts = txn.open_tree::<Post>();
    if removes_post(n) {
        posts.remove(PostPrimaryKey(n % POSTS))?;
    } else {
        posts.put(post_at(n))?;
    }
    txn.open_tree::<Counter>().put(Counter { id: 0, n })?;
    txn.commit().map(drop)
}

/// The records the store holds after exactly the crash-loop commits `1..=k`.
#[derive(Debug, Default, PartialEq)]
pub struct Expected {
    pub users: BTreeMap<u64, User>,
    pub posts: BTreeMap<u64, Post>,
}

/// [`Expected`] after `k` commits, in closed form: each record is the one written by the
/// last transaction `n ≤ k` that targets it.
pub fn expected_after(k: u64) -> Expected {
    let mut out = Expected::default();
    // The last n ≤ k with n % m == id, if any n ≥ 1 exists.
    let last = |id: u64, m: u64| -> Option<u64> {
        if k == 0 {
            return None;
        }
        let back = (k % m + m - id) % m;
        k.checked_sub(back).filter(|&n| n >= 1)
    };
    for id in 0..USERS {
        if let Some(n) = last(id, USERS) {
            out.users.insert(id, user_at(n));
        }
    }
    for id in 0..POSTS {
        if let Some(n) = last(id, POSTS).filter(|&n| !removes_post(n)) {
            out.posts.insert(id, post_at(n));
        }
    }
    out
}

/// The counter stored in `store` (0 when no transaction has committed).
pub fn stored_counter<B: Backend>(store: &Store<B>) -> NetabaseResult<u64> {
    Ok(store
        .open_tree::<Counter>()
        .get(CounterPrimaryKey(0))?
        .map_or(0, |c| c.n))
}

/// Every difference between the raw contents of `table` and `expected`.
fn diff_table(
    table: &str,
    actual: &BTreeSet<(Vec<u8>, Vec<u8>)>,
    expected: &BTreeSet<(Vec<u8>, Vec<u8>)>,
    out: &mut Vec<String>,
) {
    for extra in actual.difference(expected) {
        out.push(format!(
            "index `{table}` has an entry no record implies: {extra:?}"
        ));
    }
    for missing in expected.difference(actual) {
        out.push(format!("index `{table}` lacks an entry: {missing:?}"));
    }
}

fn raw_table<B: Backend>(
    store: &Store<B>,
    table: &str,
) -> NetabaseResult<BTreeSet<(Vec<u8>, Vec<u8>)>> {
    let txn = store.raw_backend().begin_read()?;
    Ok(
        collect_range(&txn, table, RawRange::all(), Direction::Forward)?
            .into_iter()
            .collect(),
    )
}

fn entry(k: Vec<u8>, v: Vec<u8>) -> (Vec<u8>, Vec<u8>) {
    (k, v)
}

fn concat(a: Vec<u8>, b: Vec<u8>) -> Vec<u8> {
    let mut k = a;
    k.extend(b);
    k
}

/// What the index tables of the stored records must be, compared with their raw
/// contents: one entry per (secondary value, primary key), nothing else.
pub fn index_violations<B: Backend>(
    store: &Store<B>,
    users: &[User],
    posts: &[Post],
) -> NetabaseResult<Vec<String>> {
    let mut out = Vec::new();
    let user_info = <User as NetabaseModelTrait<CrashDefinition>>::INFO;
    let post_info = <Post as NetabaseModelTrait<CrashDefinition>>::INFO;

    let email: BTreeSet<_> = users
        .iter()
        .map(|u| entry(u.email.to_key_bytes(), u.id.to_key_bytes()))
        .collect();
    let table = user_info.secondary_keys[0].table;
    diff_table(table, &raw_table(store, table)?, &email, &mut out);

    let age: BTreeSet<_> = users
        .iter()
        .map(|u| {
            entry(
                concat(u.age.to_key_bytes(), u.id.to_key_bytes()),
                Vec::new(),
            )
        })
        .collect();
    let table = user_info.secondary_keys[1].table;
    diff_table(table, &raw_table(store, table)?, &age, &mut out);

    let author: BTreeSet<_> = posts
        .iter()
        .map(|p| {
            entry(
                concat(p.author.to_key_bytes(), p.id.to_key_bytes()),
                Vec::new(),
            )
        })
        .collect();
    let table = post_info.secondary_keys[0].table;
    diff_table(table, &raw_table(store, table)?, &author, &mut out);
    Ok(out)
}

/// What a crash-loop store must look like: the state after exactly `k` commits, where
/// `k` is the stored counter, with exact indexes. Returns `k` and every violation found
/// (empty when the store is consistent). A record that does not decode is a violation,
/// not an error of the checker.
pub fn crash_state_violations<B: Backend>(store: &Store<B>) -> NetabaseResult<(u64, Vec<String>)> {
    let mut out = Vec::new();
    let k = match stored_counter(store) {
        Ok(k) => k,
        Err(e) => return Ok((0, vec![format!("counter unreadable: {e}")])),
    };
    let users: Vec<User> = match store
        .open_tree::<User>()
        .iter()
        .map(|r| r.map(|(_, u)| u))
        .collect()
    {
        Ok(users) => users,
        Err(e) => return Ok((k, vec![format!("users unreadable: {e}")])),
    };
    let posts: Vec<Post> = match store
        .open_tree::<Post>()
        .iter()
        .map(|r| r.map(|(_, p)| p))
        .collect()
    {
        Ok(posts) => posts,
        Err(e) => return Ok((k, vec![format!("posts unreadable: {e}")])),
    };
    let expected = expected_after(k);
    let actual_users: BTreeMap<u64, User> = users.iter().map(|u| (u.id, u.clone())).collect();
    let actual_posts: BTreeMap<u64, Post> = posts.iter().map(|p| (p.id, p.clone())).collect();
    if actual_users != expected.users {
        out.push(format!(
            "users differ from the state after commit {k} (a partial or foreign transaction): \
             stored {actual_users:?}, expected {:?}",
            expected.users
        ));
    }
    if actual_posts != expected.posts {
        out.push(format!(
            "posts differ from the state after commit {k}: stored {actual_posts:?}, expected {:?}",
            expected.posts
        ));
    }
    out.extend(index_violations(store, &users, &posts)?);
    Ok((k, out))
}

/// Deletes one raw entry of the `age` index of `user`: a violation the checker must
/// report.
pub fn inject_missing_index_entry<B: Backend>(store: &Store<B>, user: &User) -> NetabaseResult<()> {
    let info = <User as NetabaseModelTrait<CrashDefinition>>::INFO;
    let txn = store.raw_backend().begin_write()?;
    txn.delete(
        info.secondary_keys[1].table,
        &concat(user.age.to_key_bytes(), user.id.to_key_bytes()),
    )?;
    txn.commit()
}

/// A small deterministic generator (xorshift64*), so a run replays from its seed.
pub struct Rng(pub u64);

impl Rng {
    /// The next value.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}
