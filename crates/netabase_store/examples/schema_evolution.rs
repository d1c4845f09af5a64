//! Schema evolution: a database written by version 1 of a model is reopened by
//! version 2, which reads the old records through `From` on the fly, then migrates them
//! eagerly.
//!
//! Run it with `cargo run --example schema_evolution`.

use netabase_store::prelude::*;

/// Version 1 of the program: a user has one `name`.
#[netabase_definition_module(AppDefinition, AppKeys)]
pub mod v1 {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    /// A user, as version 1 stores it.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(AppDefinition, version = 1)]
    pub struct User {
        /// Unique id.
        #[primary_key]
        pub id: u64,
        /// Full name.
        pub name: String,
        /// Age in years.
        #[secondary_key]
        pub age: u32,
    }
}

/// Version 2 of the program: the name is split, and the email is new.
#[netabase_definition_module(AppDefinition, AppKeys)]
pub mod v2 {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    /// The stored shape of version 1, kept to read old records.
    #[derive(Serialize, Deserialize)]
    #[netabase(version = 1)]
    pub struct UserV1 {
        /// Unique id.
        pub id: u64,
        /// Full name.
        pub name: String,
        /// Age in years.
        pub age: u32,
    }

    /// A user, as version 2 stores it.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(AppDefinition, version = 2, from = UserV1)]
    pub struct User {
        /// Unique id.
        #[primary_key]
        pub id: u64,
        /// Given name.
        #[validate(non_empty)]
        pub first: String,
        /// Family name.
        pub last: String,
        /// Age in years.
        #[secondary_key]
        #[validate(range(min = 0, max = 150))]
        pub age: u32,
        /// Contact, unknown for users of version 1.
        pub email: Option<String>,
    }

    impl From<UserV1> for User {
        fn from(old: UserV1) -> Self {
            let (first, last) = old.name.split_once(' ').unwrap_or((&old.name, ""));
            User {
                id: old.id,
                first: first.to_owned(),
                last: last.to_owned(),
                age: old.age,
                email: None,
            }
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("app.redb");

    // The program at version 1 writes its users.
    {
        let store = NetabaseStore::<v1::AppDefinition, _>::redb(&path)?;
        store.open_tree::<v1::User>().put_many([
            v1::User {
                id: 1,
                name: "Ada Lovelace".into(),
                age: 36,
            },
            v1::User {
                id: 2,
                name: "Grace Hopper".into(),
                age: 85,
            },
            v1::User {
                id: 3,
                name: "Alan Turing".into(),
                age: 41,
            },
        ])?;
    }

    // The program at version 2 opens the same file.
    let store = NetabaseStore::<v2::AppDefinition, _>::redb(&path)?;
    let users = store.open_tree::<v2::User>();
    println!(
        "{} of {} users were written by version 1",
        users.outdated()?,
        users.len()?
    );

    // Old records are upgraded when read; queries and updates work on them.
    let ada = users.get(1)?.ok_or("user 1 is missing")?;
    println!("read on the fly: {ada:?}");
    let in_their_forties: Vec<String> = users
        .range_by_secondary_key(v2::UserAgeSecondaryKey(40)..v2::UserAgeSecondaryKey(50))
        .map(|r| r.map(|u| format!("{} {}", u.first, u.last)))
        .collect::<Result<_, _>>()?;
    println!("aged 40 to 49: {in_their_forties:?}");
    users.put(v2::User {
        email: Some("ada@example.com".into()),
        ..ada
    })?;

    // Migrate the rest eagerly, with progress.
    let migrated = users.migrate(|p| println!("migrating {}: {}/{}", p.model, p.done, p.total))?;
    println!(
        "migrated {migrated} users; {} left at version 1",
        users.outdated()?
    );
    assert_eq!(users.outdated()?, 0);

    // Version 1 can no longer read what version 2 wrote: a typed error, not garbage.
    drop((users, store));
    let old_program = NetabaseStore::<v1::AppDefinition, _>::redb(&path)?;
    match old_program.open_tree::<v1::User>().get(2) {
        Err(NetabaseError::Version(e)) => println!("version 1 refuses: {e}"),
        other => return Err(format!("expected a version error, got {other:?}").into()),
    }
    Ok(())
}
