//! Writes a small blog database to try the `netabase` command line on:
//! `cargo run -p netabase_cli --example sample_store -- blog.redb`.

use netabase_store::prelude::*;

/// The blog of the README.
#[netabase_definition_module(BlogDefinition, BlogKeys)]
pub mod blog {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    /// A user.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(BlogDefinition)]
    pub struct User {
        /// The id.
        #[primary_key]
        pub id: u64,
        /// The display name.
        #[validate(non_empty, len(max = 40))]
        pub name: String,
        /// The e-mail address, one per user.
        #[secondary_key(unique)]
        pub email: String,
        /// The age.
        #[secondary_key]
        pub age: u32,
        /// An optional nickname.
        pub nickname: Option<String>,
    }

    /// A post.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(BlogDefinition, version = 1)]
    pub struct Post {
        /// The id.
        #[primary_key]
        pub id: i64,
        /// The title.
        pub title: String,
        /// The author's user id.
        #[link(User)]
        pub author_id: u64,
        /// Tags.
        pub tags: Vec<String>,
    }
}
use blog::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "blog.redb".into());
    let store = BlogDefinition::open_redb(&path)?;
    let users = store.open_tree::<User>();
    for (id, name, age, nickname) in [
        (1, "Alice", 34, Some("al")),
        (2, "Bob", 27, None),
        (3, "Carol", 34, None),
    ] {
        users.put(User {
            id,
            name: name.into(),
            email: format!("{}@example.com", name.to_lowercase()),
            age,
            nickname: nickname.map(Into::into),
        })?;
    }
    store.open_tree::<Post>().put_many([
        Post {
            id: 10,
            title: "Hello".into(),
            author_id: 1,
            tags: vec!["intro".into()],
        },
        Post {
            id: 11,
            title: "Indexes, exactly".into(),
            author_id: 3,
            tags: vec!["design".into(), "storage".into()],
        },
    ])?;
    println!("wrote {path}");
    Ok(())
}
