use netabase_store::prelude::*;

#[netabase_definition_module(BlogDefinition, BlogKeys)]
pub mod blog {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(BlogDefinition, check = is_fine)]
    pub struct User {
        #[primary_key]
        pub id: u64,
        #[validate(positive)]
        pub age: u32,
        #[validate(len(least = 1))]
        pub name: String,
        #[validate(non_empty, email)]
        pub email: String,
        #[validate]
        pub bio: String,
    }
}

fn main() {}
