//! Links across definitions: two schemas in one database, the invoices of `billing`
//! linking to the customers of `accounts` (`#[link(super::accounts::Customer)]`).
//!
//! Integrity holds from both sides: `billing` refuses an invoice whose customer does
//! not exist, and `accounts` refuses to remove a customer that an invoice still links
//! to, although it knows nothing of `billing`'s types (the link is recorded in the
//! database when `billing`'s store opens). Across definitions a link can only
//! `restrict`.
//!
//! Run it with `cargo run --example cross_links`.

use std::sync::Arc;

use netabase_store::backend::memory::MemoryBackend;
use netabase_store::prelude::*;

/// The customers: a schema that knows nothing of billing.
#[netabase_definition_module(AccountsDefinition, AccountsKeys)]
pub mod accounts {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    /// A customer.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(AccountsDefinition)]
    pub struct Customer {
        /// Unique id.
        #[primary_key]
        pub id: u64,
        /// Display name.
        pub name: String,
    }
}

/// The invoices, linking into `accounts`.
#[netabase_definition_module(BillingDefinition, BillingKeys)]
pub mod billing {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    /// An invoice of a customer of `accounts`.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(BillingDefinition)]
    pub struct Invoice {
        /// Unique id.
        #[primary_key]
        pub id: u64,
        /// The customer billed: a model of another definition, by its path. The
        /// field's type must be the customer's primary key type (checked when
        /// compiling).
        #[link(super::accounts::Customer)]
        pub customer: u64,
        /// Amount in cents.
        pub cents: u64,
    }
}

use accounts::{AccountsDefinition, Customer};
use billing::{BillingDefinition, Invoice, InvoiceCustomerLink};

fn main() -> Result<(), NetabaseError> {
    // One database, two stores.
    let backend = Arc::new(MemoryBackend::new());
    let accounts = NetabaseStore::<AccountsDefinition, _>::from_shared_backend(backend.clone())?;
    let billing = NetabaseStore::<BillingDefinition, _>::from_shared_backend(backend)?;
    let (customers, invoices) = (
        accounts.open_tree::<Customer>(),
        billing.open_tree::<Invoice>(),
    );

    customers.put(Customer {
        id: 1,
        name: "Ada".into(),
    })?;
    invoices.put(Invoice {
        id: 100,
        customer: 1,
        cents: 4_200,
    })?;

    // An invoice for a customer that does not exist is refused.
    let orphan = invoices.put(Invoice {
        id: 101,
        customer: 2,
        cents: 100,
    });
    assert!(matches!(orphan, Err(NetabaseError::DanglingLink(_))));
    println!(
        "refused: {}",
        orphan.err().map(|e| e.to_string()).unwrap_or_default()
    );

    // Navigation across the definitions, both ways.
    let billed: Vec<u64> = customers
        .referrers_across::<Invoice>(1)?
        .into_iter()
        .map(|i| i.id)
        .collect();
    println!("invoices of customer 1: {billed:?}");
    let invoice = invoices
        .get(100)?
        .ok_or_else(|| NetabaseError::decode_other("Invoice", &[], "missing"))?;
    let names: Vec<String> = invoices
        .follow_across::<InvoiceCustomerLink>(&invoice)?
        .into_iter()
        .map(|c| c.name)
        .collect();
    println!("invoice 100 bills {names:?}");

    // `accounts` cannot remove a customer that is still billed.
    let refused = customers.remove(1);
    assert!(matches!(refused, Err(NetabaseError::StillReferenced(_))));
    println!(
        "refused: {}",
        refused.err().map(|e| e.to_string()).unwrap_or_default()
    );

    // Once the invoice is gone, the customer can go.
    invoices.remove(100)?;
    assert!(customers.remove(1)?.is_some());
    println!("customer 1 removed after its last invoice");
    Ok(())
}
