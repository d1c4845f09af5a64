//! Compile-fail tests of the asynchronous transaction type-state: a read transaction
//! has no write methods and cannot be committed.
#![cfg(feature = "threaded")]

#[test]
fn async_read_transactions_cannot_write() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui_async/*.rs");
}
