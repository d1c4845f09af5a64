use netabase_store::prelude::*;

#[netabase_definition_module(BlogDefinition, BlogKeys)]
pub mod blog {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    #[netabase(version = 1)]
    pub struct UserV1 {
        pub id: u64,
    }

    // `from` without a version above the previous one.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(BlogDefinition, from = UserV1)]
    pub struct User {
        #[primary_key]
        pub id: u64,
    }

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(BlogDefinition, version = "two")]
    pub struct Post {
        #[primary_key]
        pub id: u64,
    }

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(BlogDefinition, version = 2, from = 1)]
    pub struct Tag {
        #[primary_key]
        pub id: u64,
    }

    // An older version without a version.
    #[derive(Serialize, Deserialize)]
    #[netabase(from = UserV1)]
    pub struct TagV1 {
        pub id: u64,
    }
}

fn main() {}
