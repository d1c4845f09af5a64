use netabase_store::prelude::*;

#[netabase_definition_module(BlogDefinition, BlogKeys)]
pub mod blog {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    #[netabase(version = 3)]
    pub struct UserV3 {
        pub id: u64,
    }

    // `from` must name an older version.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(BlogDefinition, version = 2, from = UserV3)]
    pub struct User {
        #[primary_key]
        pub id: u64,
    }

    impl From<UserV3> for User {
        fn from(v3: UserV3) -> Self {
            User { id: v3.id }
        }
    }
}

fn main() {}
