//! Compile-fail tests of the transaction type-state: a read transaction has no write
//! methods and cannot be committed.

#[test]
fn read_transactions_cannot_write() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui_txn/*.rs");
}
