//! A lazy range iterator that reads a table in chunks.
//!
//! Engines whose cursors borrow a table handle (redb inside a write transaction) or a
//! lock cannot hand out an iterator that outlives the call. Instead the iterator
//! remembers the last key it returned and asks for the next chunk after it, so memory
//! stays bounded and nothing is held between chunks.

use std::collections::VecDeque;
use std::ops::Bound;

use super::{Cursor, Direction, Entry, EntryCursor, RawRange};
use crate::error::Result;

const FIRST_CHUNK: usize = 16;
const MAX_CHUNK: usize = 4096;

/// Reads a range chunk by chunk with `fetch(range, direction, limit)`, which returns at
/// most `limit` entries of `range` in `direction` order.
pub struct ChunkedRange<F> {
    fetch: F,
    range: RawRange,
    direction: Direction,
    buffer: VecDeque<Entry>,
    chunk: usize,
    exhausted: bool,
}

impl<F> ChunkedRange<F>
where
    F: FnMut(&RawRange, Direction, usize) -> Result<Vec<Entry>>,
{
    /// A lazy iterator over `range`.
    pub fn new(range: RawRange, direction: Direction, fetch: F) -> Self {
        let exhausted = range.is_empty();
        ChunkedRange {
            fetch,
            range,
            direction,
            buffer: VecDeque::new(),
            chunk: FIRST_CHUNK,
            exhausted,
        }
    }

    /// A lazy iterator whose first chunk holds `first` entries (engines that pay a round
    /// trip per chunk start larger).
    pub fn with_first_chunk(range: RawRange, direction: Direction, first: usize, fetch: F) -> Self {
        let mut chunked = Self::new(range, direction, fetch);
        chunked.chunk = first.clamp(1, MAX_CHUNK);
        chunked
    }

    /// The range as a boxed cursor, the form `ReadTxn::cursor` returns.
    pub fn cursor<'a>(range: RawRange, direction: Direction, fetch: F) -> Cursor<'a>
    where
        F: 'a,
    {
        Box::new(EntryCursor::new(Self::new(range, direction, fetch)))
    }

    fn refill(&mut self) -> Result<()> {
        let entries = (self.fetch)(&self.range, self.direction, self.chunk)?;
        if entries.len() < self.chunk {
            self.exhausted = true;
        }
        if let Some((last, _)) = entries.last() {
            // Continue strictly after the last key seen, in the direction of travel.
            match self.direction {
                Direction::Forward => self.range.start = Bound::Excluded(last.clone()),
                Direction::Reverse => self.range.end = Bound::Excluded(last.clone()),
            }
        } else {
            self.exhausted = true;
        }
        self.buffer.extend(entries);
        // Long scans get larger chunks, short lookups stay cheap.
        self.chunk = (self.chunk * 4).min(MAX_CHUNK);
        Ok(())
    }
}

impl<F> Iterator for ChunkedRange<F>
where
    F: FnMut(&RawRange, Direction, usize) -> Result<Vec<Entry>>,
{
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buffer.is_empty()
            && !self.exhausted
            && let Err(e) = self.refill()
        {
            self.exhausted = true;
            return Some(Err(e));
        }
        self.buffer.pop_front().map(Ok)
    }
}
