use netabase_store::prelude::*;

#[netabase_definition_module(AccountsDefinition, AccountsKeys)]
pub mod accounts {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(AccountsDefinition)]
    pub struct Account {
        #[primary_key]
        pub id: u64,
    }

    /// Not a model.
    pub struct Plain;
}

#[netabase_definition_module(BlogDefinition, BlogKeys)]
pub mod blog {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(BlogDefinition)]
    pub struct Post {
        #[primary_key]
        pub id: u64,
        // `Account`'s primary key is a `u64`.
        #[link(super::accounts::Account)]
        pub author: String,
        #[link(super::accounts::Plain)]
        pub plain: u64,
        #[link(super::accounts::Missing)]
        pub missing: u64,
    }
}

fn main() {}
