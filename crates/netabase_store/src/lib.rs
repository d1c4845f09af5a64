//! Netabase store: typed models with primary and secondary keys over interchangeable
//! embedded backends.
#![doc = include_str!("../../../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod backend;
pub mod codec;
mod error;
pub mod schema;

pub use error::{BoxedError, NetabaseError, Result};

/// Re-exports used by the code that the macros generate; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use serde;
}

pub use serde;
