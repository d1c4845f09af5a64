//! Compile-fail tests: the errors of the macros (and of the typed API) must say what is
//! wrong and point at the offending tokens. The expected output is committed next to
//! each case as `tests/ui/<case>.stderr`; regenerate with `TRYBUILD=overwrite` after a
//! deliberate change, then read the diff.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
