//! Byte encodings: order-preserving keys and versioned values.

pub mod dynamic;
pub mod key;
pub mod value;
