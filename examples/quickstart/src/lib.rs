//! The README's quick start, run with `cargo run --example quickstart` from the root of
//! the repository. It lives in a package of its own so that running it builds only
//! `netabase_store` (with its default redb backend) and what that needs, not the test
//! dependencies of the store.
