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
}

#[netabase_definition_module(BlogDefinition, BlogKeys)]
pub mod blog {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(BlogDefinition, parent = Account)]
    pub struct Post {
        #[primary_key]
        pub id: u64,
        // The store of `accounts` cannot remove or change posts.
        #[link(super::accounts::Account, on_delete = cascade)]
        pub author: u64,
        #[link(super::accounts::Account, on_delete = set_null)]
        pub editor: Option<u64>,
    }
}

fn main() {}
