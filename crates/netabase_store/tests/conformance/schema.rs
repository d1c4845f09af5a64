//! The schema every backend is tested with.

use netabase_store::prelude::*;

#[netabase_definition_module(TestDefinition, TestKeys)]
pub mod models {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(TestDefinition)]
    pub struct User {
        #[primary_key]
        pub id: u64,
        pub name: String,
        #[secondary_key(unique)]
        pub email: String,
        #[secondary_key]
        pub age: u32,
    }

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(TestDefinition)]
    pub struct Post {
        #[primary_key]
        pub id: i64,
        pub title: String,
        #[secondary_key]
        pub author_id: u64,
    }

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(TestDefinition)]
    pub struct Word {
        #[primary_key]
        pub text: String,
        #[secondary_key]
        pub score: f64,
        #[secondary_key]
        pub tag: Option<String>,
    }

    /// A model at version 2, for the version checks.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(TestDefinition, version = 2)]
    pub struct Versioned {
        #[primary_key]
        pub id: u32,
        pub points: u32,
        #[secondary_key]
        pub tag: String,
    }

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(TestDefinition)]
    pub struct Cell {
        #[primary_key]
        pub at: (u32, String),
        pub value: i32,
        #[secondary_key]
        pub value_key: i32,
    }
}

pub use models::*;

pub fn user(id: u64, email: &str, age: u32) -> User {
    User {
        id,
        name: format!("user {id}"),
        email: email.to_owned(),
        age,
    }
}
