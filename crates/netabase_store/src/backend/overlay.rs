//! Reading your own writes over committed data: the backends that keep a write
//! transaction's writes in an overlay until commit (sled, redis) merge it over every
//! scan of the committed entries.

use std::cmp::Ordering;

use super::{Direction, Entry};
use crate::error::Result;

/// At most `limit` entries: the committed entries `base` with the transaction's own
/// `writes` (a value, or `None` for a removal) laid over them, both in `direction` order
/// over the same range. An overlay write wins a tie, hiding the older committed value.
///
/// # Errors
/// The first error of `base` that the merge reaches.
pub(crate) fn merge<K, V>(
    base: impl Iterator<Item = Result<Entry>>,
    writes: impl Iterator<Item = (K, Option<V>)>,
    direction: Direction,
    limit: usize,
) -> Result<Vec<Entry>>
where
    K: AsRef<[u8]> + Into<Vec<u8>>,
    V: Into<Vec<u8>>,
{
    let mut base = base.peekable();
    let mut writes = writes.peekable();
    let mut out = Vec::with_capacity(limit.min(1024));
    while out.len() < limit {
        // Which side holds the next key in the direction of travel.
        let from_overlay = match (base.peek(), writes.peek()) {
            (None, None) => break,
            (Some(_), None) | (Some(Err(_)), Some(_)) => false,
            (None, Some(_)) => true,
            (Some(Ok((bk, _))), Some((wk, _))) => {
                let order = bk.as_slice().cmp(wk.as_ref());
                let order = match direction {
                    Direction::Forward => order,
                    Direction::Reverse => order.reverse(),
                };
                match order {
                    Ordering::Less => false,
                    Ordering::Greater => true,
                    Ordering::Equal => {
                        base.next();
                        true
                    }
                }
            }
        };
        if from_overlay {
            if let Some((key, Some(value))) = writes.next() {
                out.push((key.into(), value.into()));
            }
        } else if let Some(item) = base.next() {
            out.push(item?);
        }
    }
    Ok(out)
}
