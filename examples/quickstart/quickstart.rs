//! The netabase quick start: a schema of two models, the one-shot tree API, secondary
//! keys, range scans, explicit transactions, and reopening a database file.
//!
//! Run it with `cargo run --example quickstart`.

use netabase_store::prelude::*;

/// The schema: every model of the blog, and the generated keys.
#[netabase_definition_module(BlogDefinition, BlogKeys)]
pub mod blog {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    /// A user, found by id, by unique email, or by age.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(BlogDefinition)]
    pub struct User {
        /// Unique id.
        #[primary_key]
        pub id: u64,
        /// Display name.
        pub name: String,
        /// Login; no two users share one.
        #[secondary_key(unique)]
        pub email: String,
        /// Age in years.
        #[secondary_key]
        pub age: u32,
    }

    /// A post, found by id or by author.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(BlogDefinition)]
    pub struct Post {
        /// Unique id.
        #[primary_key]
        pub id: i64,
        /// Headline.
        pub title: String,
        /// The `User` who wrote it.
        #[secondary_key]
        pub author_id: u64,
    }
}
use blog::*;

fn user(id: u64, name: &str, age: u32) -> User {
    User {
        id,
        name: name.to_owned(),
        email: format!("{}@example.com", name.to_lowercase()),
        age,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("netabase-quickstart-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("blog.redb");

    // The embedded default: one redb file.
    let store = BlogDefinition::open_redb(&path)?;
    let users = store.open_tree::<User>();
    let posts = store.open_tree::<Post>();

    // One-shot operations, each in its own transaction. Keys take their plain value
    // (`get(1)`) or their newtype (`get(UserPrimaryKey(1))`).
    users.put(user(1, "Ada", 36))?;
    users.put_many(vec![
        user(2, "Brian", 29),
        user(3, "Chloe", 36),
        user(250, "Dan", 41),
    ])?;
    println!("users stored: {}", users.len()?);
    println!("user 1: {:?}", users.get(1)?);

    // Secondary keys: equality, a unique lookup, and range queries.
    let same_age = users.get_by_secondary_key(UserAgeSecondaryKey(36))?;
    println!(
        "aged 36: {:?}",
        same_age.iter().map(|u| &u.name).collect::<Vec<_>>()
    );
    let brian = users.get_by_unique_key(UserEmailSecondaryKey("brian@example.com".into()))?;
    println!(
        "brian@example.com belongs to user {:?}",
        brian.map(|u| u.id)
    );
    for item in users.range_by_secondary_key(UserAgeSecondaryKey(30)..=UserAgeSecondaryKey(39)) {
        println!("  in their thirties: {}", item?.name);
    }

    // A unique key held by another record is refused, and nothing is written.
    let mut clash = user(4, "Eve", 22);
    clash.email = "ada@example.com".into();
    match users.put(clash) {
        Err(NetabaseError::UniqueViolation(v)) => {
            println!("refused: {} is taken by user {}", v.value, v.holder)
        }
        other => println!("unexpected: {other:?}"),
    }

    // Iteration follows the natural order of the key type: 1 < 3 < 250, not "1" < "250" < "3".
    let ids: Vec<u64> = users
        .iter()
        .map(|r| r.map(|(k, _)| k.0))
        .collect::<Result<_, _>>()?;
    println!("ids in order: {ids:?}");
    let some: Vec<u64> = users
        .range(2..100)
        .map(|r| r.map(|(k, _)| k.0))
        .collect::<Result<_, _>>()?;
    println!("ids in 2..100: {some:?}");

    // An explicit write transaction across two models: all or nothing. Its commit says
    // what changed, one change per record.
    let txn = store.write()?;
    {
        let users = txn.open_tree::<User>();
        let posts = txn.open_tree::<Post>();
        users.put(user(5, "Femi", 33))?;
        posts.put(Post {
            id: 1,
            title: "Hello".into(),
            author_id: 5,
        })?;
        posts.put(Post {
            id: 2,
            title: "Again".into(),
            author_id: 5,
        })?;
    }
    let changes = txn.commit()?;
    println!("the transaction changed {} records", changes.len());

    // Dropping a write transaction without commit rolls it back.
    {
        let txn = store.write()?;
        txn.open_tree::<Post>().put(Post {
            id: 3,
            title: "Draft".into(),
            author_id: 5,
        })?;
    }
    let by_femi = posts.get_by_secondary_key(PostAuthorIdSecondaryKey(5))?;
    println!(
        "posts by Femi: {:?}",
        by_femi.iter().map(|p| &p.title).collect::<Vec<_>>()
    );

    // A read transaction is one consistent snapshot.
    let read = store.read()?;
    users.remove(2)?;
    println!(
        "snapshot still sees user 2: {}, the store does not: {}",
        read.open_tree::<User>().get(2)?.is_some(),
        users.get(2)?.is_some()
    );
    drop(read);

    // Reopening the file keeps everything.
    drop((users, posts, store));
    let store = BlogDefinition::open_redb(&path)?;
    println!(
        "after reopening: {} users, {} posts",
        store.open_tree::<User>().len()?,
        store.open_tree::<Post>().len()?
    );

    drop(store);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
