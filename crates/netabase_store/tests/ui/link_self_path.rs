use netabase_store::prelude::*;

#[netabase_definition_module(BlogDefinition, BlogKeys)]
pub mod blog {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    /// Not a model: no `NetabaseModel` derive.
    #[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
    pub struct Draft {
        pub id: u64,
    }

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(BlogDefinition)]
    pub struct User {
        #[primary_key]
        pub id: u64,
    }

    // A parent is a model of this module.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(BlogDefinition, parent = super::accounts::Account)]
    pub struct Post {
        #[primary_key]
        pub id: u64,
        // `self::` is this module, which has no model `Author`.
        #[link(self::Author, on_delete = cascade)]
        pub author: u64,
        // A struct of the module that is not a model.
        #[link(self::Draft)]
        pub draft: u64,
    }
}

fn main() {}
