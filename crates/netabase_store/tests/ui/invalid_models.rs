// Several mistakes in one module are all reported in one compilation.
use netabase_store::prelude::*;

#[netabase_definition_module(ShopDefinition, ShopKeys)]
pub mod shop {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug)]
    #[netabase(BlogDefinition)]
    pub struct WrongDefinition {
        #[primary_key]
        pub id: u64,
    }

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug)]
    pub struct Tuple(pub u64);

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug)]
    pub enum NotAStruct {
        A,
    }

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug)]
    pub struct Generic<T> {
        #[primary_key]
        pub id: T,
    }

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug)]
    #[netabase(ShopDefinition, version = 70000)]
    pub struct BothKeys {
        #[primary_key]
        #[secondary_key]
        pub id: u64,
    }
}

fn main() {}
