//! Fixtures of the command-line tests: a small definition, databases filled with it,
//! and a way to run the `netabase` binary.
#![allow(dead_code, missing_docs)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use netabase_store::prelude::*;

#[netabase_definition_module(ShopDefinition, ShopKeys)]
pub mod shop {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(ShopDefinition, version = 2)]
    pub struct Customer {
        #[primary_key]
        pub id: u64,
        pub name: String,
        #[secondary_key(unique)]
        pub email: String,
        #[secondary_key]
        pub age: u32,
        pub tags: Vec<String>,
        pub nickname: Option<String>,
        pub balance: i64,
        pub score: f64,
        pub avatar: Vec<u8>,
        pub home: (i32, i32),
    }

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(ShopDefinition)]
    pub struct Note {
        #[primary_key]
        pub title: String,
        pub body: String,
    }
}

pub use shop::*;

/// `n` customers with distinct emails and ages cycling over 20..25.
pub fn customers(n: u64) -> Vec<Customer> {
    (0..n)
        .map(|i| Customer {
            id: i,
            name: format!("customer {i}"),
            email: format!("c{i}@example.com"),
            age: 20 + u32::try_from(i % 5).unwrap_or(0),
            tags: vec!["a".into(), format!("t{i}")],
            nickname: (i % 2 == 0).then(|| format!("nick{i}")),
            balance: -(i64::try_from(i).unwrap_or(0)) * 100,
            score: i as f64 / 2.0,
            avatar: vec![0, 1, 255, u8::try_from(i % 256).unwrap_or(0)],
            home: (-(i as i32), i as i32),
        })
        .collect()
}

pub fn notes() -> Vec<Note> {
    vec![
        Note {
            title: "first".into(),
            body: "hello".into(),
        },
        Note {
            title: "second".into(),
            body: "with \"quotes\" and é".into(),
        },
    ]
}

/// Writes the fixture data into an opened store.
pub fn fill<B: netabase_store::backend::Backend>(
    store: &NetabaseStore<ShopDefinition, B>,
    n: u64,
) -> Result<(), NetabaseError> {
    store.open_tree::<Customer>().put_many(customers(n))?;
    store.open_tree::<Note>().put_many(notes())?;
    Ok(())
}

/// A redb fixture with `n` customers, closed again.
pub fn redb_fixture(dir: &Path, n: u64) -> Result<std::path::PathBuf, NetabaseError> {
    let path = dir.join("shop.redb");
    let store = ShopDefinition::open_redb(&path)?;
    fill(&store, n)?;
    Ok(path)
}

/// A sled fixture with `n` customers, closed again.
pub fn sled_fixture(dir: &Path, n: u64) -> Result<std::path::PathBuf, NetabaseError> {
    let path = dir.join("shop.sled");
    let store = ShopDefinition::open_sled(&path)?;
    fill(&store, n)?;
    Ok(path)
}

/// Runs `netabase args...` with `stdin` as its standard input.
pub fn netabase(args: &[&str], stdin: &[u8]) -> std::io::Result<Output> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_netabase"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin)?;
    }
    child.wait_with_output()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub type TestResult = Result<(), Box<dyn std::error::Error>>;
