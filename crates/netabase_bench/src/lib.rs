//! Benchmarks of `netabase_store` against the engines under it and against native_db.
//!
//! This crate is not published: native_db and the raw engines it measures against must
//! never reach the dependency tree of a netabase user. Every contender does the same
//! work on the same model through the [`Contender`] trait, so the criterion benches
//! (`benches/compare.rs`) and the scaling run (`src/bin/scale.rs`) measure like with like.
//!
//! The raw baselines are the yardstick that defines "overhead": they use the table layout
//! netabase uses (primary key `u64` big-endian; value a 3-byte header followed by the
//! postcard encoding of the model; index key `u32` big-endian followed by the primary
//! key, empty value), and keep the index exact for everything they do.

pub mod at_rest;
pub mod contenders;
pub mod data;
pub mod model_rules;
pub mod redis_server;
pub mod report;
pub mod scale;

pub use contenders::Contender;
