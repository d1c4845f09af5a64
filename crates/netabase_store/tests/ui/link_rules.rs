use netabase_store::prelude::*;

#[netabase_definition_module(BlogDefinition, BlogKeys)]
pub mod blog {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(BlogDefinition)]
    pub struct User {
        #[primary_key]
        pub id: u64,
    }

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(BlogDefinition, parent = Folder)]
    pub struct Post {
        #[primary_key]
        pub id: u64,
        // No model `Author` in this definition.
        #[link(Author)]
        pub author: u64,
        // `set_null` on a link that cannot be empty.
        #[link(User, on_delete = set_null)]
        pub editor: u64,
        #[link(User, on_delete = vanish)]
        pub reviewer: u64,
        #[link(User, required)]
        pub owner: u64,
        #[secondary_key]
        #[link(User)]
        pub indexed_twice: u64,
    }
}

fn main() {}
