//! The contenders: netabase on each backend, the raw engines with a hand-written index,
//! and native_db. Each one implements [`Contender`] for the same workloads.

use crate::data::Record;

pub mod native;
pub mod netabase;
pub mod raw_redb;
pub mod raw_sled;

/// The error type of the benchmark code: whatever the engine reports.
pub type BenchError = Box<dyn std::error::Error + Send + Sync>;
/// A result of the benchmark code.
pub type BenchResult<T> = Result<T, BenchError>;

/// One store under test, holding the single-index model (`Item`) and the five-index
/// model (`Wide`). Every method does its whole workload and returns how many records it
/// saw, so that nothing can be optimized away and the contenders can be checked against
/// each other.
pub trait Contender: Sized {
    /// The contender's own type for the single-index model.
    type Item;
    /// The contender's own type for the five-index model.
    type Wide;

    /// The name used in benchmark ids and tables.
    const NAME: &'static str;

    /// A new, empty database.
    ///
    /// # Errors
    /// Whatever the engine reports.
    fn open() -> BenchResult<Self>;

    /// The contender's `Item` for a record.
    fn item(record: &Record) -> Self::Item;
    /// The contender's `Wide` for a record.
    fn wide(record: &Record) -> Self::Wide;

    /// Stores every item in one write transaction (insert or replace, index kept exact).
    ///
    /// # Errors
    /// Whatever the engine reports.
    fn insert_bulk(&self, items: Vec<Self::Item>) -> BenchResult<()>;
    /// Stores every item, one write transaction each.
    ///
    /// # Errors
    /// Whatever the engine reports.
    fn insert_each(&self, items: Vec<Self::Item>) -> BenchResult<()>;
    /// Stores every wide record in one write transaction.
    ///
    /// # Errors
    /// Whatever the engine reports.
    fn insert_bulk_wide(&self, items: Vec<Self::Wide>) -> BenchResult<()>;

    /// Reads the item of every id in one read transaction; returns how many were found.
    ///
    /// # Errors
    /// Whatever the engine reports.
    fn get_one_txn(&self, ids: &[u64]) -> BenchResult<usize>;
    /// Reads the item of every id, one read transaction each.
    ///
    /// # Errors
    /// Whatever the engine reports.
    fn get_each_txn(&self, ids: &[u64]) -> BenchResult<usize>;
    /// For each value, the items whose secondary key equals it (one read transaction per
    /// query, records decoded); returns the total number of items.
    ///
    /// # Errors
    /// Whatever the engine reports.
    fn query_eq(&self, groups: &[u32]) -> BenchResult<usize>;
    /// For each `(low, high)`, the items whose secondary key lies in `low..high` (one
    /// read transaction per query, records decoded); returns the total number of items.
    ///
    /// # Errors
    /// Whatever the engine reports.
    fn query_range(&self, ranges: &[(u32, u32)]) -> BenchResult<usize>;
    /// Decodes every item in primary-key order; returns how many there were.
    ///
    /// # Errors
    /// Whatever the engine reports.
    fn iterate(&self) -> BenchResult<usize>;
    /// Removes the items with these ids (and their index entries) in one write
    /// transaction; returns how many were removed.
    ///
    /// # Errors
    /// Whatever the engine reports.
    fn remove_bulk(&self, ids: &[u64]) -> BenchResult<usize>;
    /// Removes the wide records with these ids in one write transaction.
    ///
    /// # Errors
    /// Whatever the engine reports.
    fn remove_bulk_wide(&self, ids: &[u64]) -> BenchResult<usize>;

    /// A database holding `records` as items (and, with `wide`, as wide records too).
    ///
    /// # Errors
    /// Whatever the engine reports.
    fn filled(records: &[Record], wide: bool) -> BenchResult<Self> {
        let db = Self::open()?;
        db.insert_bulk(records.iter().map(Self::item).collect())?;
        if wide {
            db.insert_bulk_wide(records.iter().map(Self::wide).collect())?;
        }
        Ok(db)
    }
}
