use netabase_store::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[netabase(BlogDefinition)]
pub struct User {
    #[primary_key]
    pub id: u64,
}

#[netabase(BlogDefinition)]
pub struct Post {
    pub id: u64,
}

fn main() {}
