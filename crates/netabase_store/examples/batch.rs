//! Batches: queue puts and removes on a tree, then apply them all at once, or none.
//!
//! Run it with `cargo run --example batch`.

use netabase_store::prelude::*;

/// The schema.
#[netabase_definition_module(ShopDefinition, ShopKeys)]
pub mod shop {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    /// A customer, found by id or by unique email.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(ShopDefinition)]
    pub struct Customer {
        /// Unique id.
        #[primary_key]
        pub id: u64,
        /// Login; no two customers share one.
        #[secondary_key(unique)]
        pub email: String,
    }
}

use shop::*;

fn customer(id: u64, email: &str) -> Customer {
    Customer {
        id,
        email: email.into(),
    }
}

fn main() -> Result<(), NetabaseError> {
    let store = NetabaseStore::<ShopDefinition, _>::temp()?;
    let customers = store.open_tree::<Customer>();
    customers.put(customer(1, "old@example.com"))?;

    // Nothing is written, and nothing is locked, until `commit`.
    let mut batch = customers.create_batch();
    for id in 2..=100 {
        batch.put(customer(id, &format!("c{id}@example.com")))?;
    }
    batch.remove(CustomerPrimaryKey(1));
    batch.commit()?;
    println!("after the first batch: {} customers", customers.len()?);

    // One bad operation and the whole batch is refused: a unique email held by another.
    let mut batch = customers.create_batch();
    batch.put(customer(101, "new@example.com"))?;
    batch.put(customer(102, "c2@example.com"))?;
    match batch.commit() {
        Err(e @ NetabaseError::UniqueViolation(_)) => println!("refused: {e}"),
        other => println!("unexpected: {other:?}"),
    }
    assert_eq!(customers.get(CustomerPrimaryKey(101))?, None);
    println!("after the refused batch: {} customers", customers.len()?);

    // A batch that is dropped applies nothing.
    {
        let mut batch = customers.create_batch();
        batch.remove(CustomerPrimaryKey(2));
    }
    assert!(customers.get(CustomerPrimaryKey(2))?.is_some());
    Ok(())
}
