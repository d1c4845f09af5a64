use netabase_store::prelude::*;

#[netabase_definition_module(BlogDefinition, BlogKeys)]
pub mod blog {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    // Not marked `#[netabase(version = 1)]`: not an older version of a model.
    #[derive(Serialize, Deserialize)]
    pub struct UserV1 {
        pub id: u64,
    }

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(BlogDefinition, version = 2, from = UserV1)]
    pub struct User {
        #[primary_key]
        pub id: u64,
    }

    impl From<UserV1> for User {
        fn from(v1: UserV1) -> Self {
            User { id: v1.id }
        }
    }
}

fn main() {}
