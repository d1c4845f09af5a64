//! Version stamps: a hybrid logical clock plus the id of the writer.
//!
//! Every record of a synced model carries the [`VersionStamp`] of the write that made
//! it (or of the removal that left its tombstone). Stamps are totally ordered, first by
//! their [`Hlc`] and then by their [`WriterId`], so two replicas that compare the same
//! two stamps always pick the same winner.

use std::fmt;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The id of a writer (a store, or later a node): 32 bytes, the size of an ed25519
/// public key, so that a peer-to-peer node can use its identity key as its writer id.
///
/// A store picks a random id when sync is first turned on and keeps it in its meta
/// table; [`crate::OpenOptions::writer_id`] sets one explicitly.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub struct WriterId(pub [u8; 32]);

impl WriterId {
    /// A random writer id, from the operating system's per-process random hash keys,
    /// the time and the process id, mixed with BLAKE3.
    pub fn random() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = blake3::Hasher::new_derive_key("netabase sync writer id v1");
        for i in 0u64..4 {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(i);
            hasher.update(&h.finish().to_le_bytes());
        }
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        hasher.update(&nanos.to_le_bytes());
        hasher.update(&std::process::id().to_le_bytes());
        WriterId(*hasher.finalize().as_bytes())
    }
}

impl fmt::Debug for WriterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WriterId(")?;
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "..)")
    }
}

/// A hybrid logical clock reading: wall-clock milliseconds since the Unix epoch and a
/// counter that orders the readings taken within one millisecond (or while the wall
/// clock is behind a reading already seen).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct Hlc {
    /// Physical time, milliseconds since the Unix epoch.
    pub millis: u64,
    /// Logical counter within `millis`.
    pub counter: u32,
}

/// The version of a record: when (an [`Hlc`] reading) and by whom (a [`WriterId`]) it
/// was written. Ordered by `hlc`, then by `writer`: the default merge rule keeps the
/// greatest.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct VersionStamp {
    /// The clock reading of the write.
    pub hlc: Hlc,
    /// The writer that made it.
    pub writer: WriterId,
}

impl VersionStamp {
    /// The size of [`VersionStamp::to_bytes`].
    pub const LEN: usize = 44;

    /// Fixed-size big-endian bytes whose byte order is the stamp order.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..8].copy_from_slice(&self.hlc.millis.to_be_bytes());
        out[8..12].copy_from_slice(&self.hlc.counter.to_be_bytes());
        out[12..].copy_from_slice(&self.writer.0);
        out
    }

    /// The smallest stamp greater than this one: the same clock reading with the next
    /// writer id (carrying into the counter, then the milliseconds, past the greatest
    /// id). No writer makes it in practice (its id would be the next of another
    /// writer's random or public-key id), so it sits between this version and every
    /// other newer one: the stamp of a tombstone that must beat exactly this version
    /// and nothing newer (a record that lost a unique key to a newer one, see
    /// [`StampedWrite::UniqueKeyHeld`](super::StampedWrite::UniqueKeyHeld)).
    ///
    /// ```
    /// use netabase_store::sync::{Hlc, VersionStamp, WriterId};
    ///
    /// let stamp = VersionStamp { hlc: Hlc { millis: 5, counter: 0 }, writer: WriterId([1; 32]) };
    /// let next = stamp.successor();
    /// assert!(next > stamp);
    /// assert_eq!((next.hlc, next.writer.0[31]), (stamp.hlc, 2));
    /// ```
    pub fn successor(&self) -> VersionStamp {
        let mut next = *self;
        for byte in next.writer.0.iter_mut().rev() {
            let (sum, carry) = byte.overflowing_add(1);
            *byte = sum;
            if !carry {
                return next;
            }
        }
        // Past the greatest writer id: the next clock reading, from the smallest id.
        next.hlc = match next.hlc.counter.checked_add(1) {
            Some(counter) => Hlc {
                millis: next.hlc.millis,
                counter,
            },
            None => Hlc {
                millis: next.hlc.millis.saturating_add(1),
                counter: 0,
            },
        };
        next
    }

    /// Reads [`VersionStamp::to_bytes`]; `None` when `bytes` is shorter.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let millis = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
        let counter = u32::from_be_bytes(bytes.get(8..12)?.try_into().ok()?);
        let writer = WriterId(bytes.get(12..Self::LEN)?.try_into().ok()?);
        Some(VersionStamp {
            hlc: Hlc { millis, counter },
            writer,
        })
    }
}

/// Wall-clock milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A store's hybrid logical clock: every reading is greater than every reading it
/// handed out or observed before, and close to wall-clock time.
#[derive(Debug)]
pub(crate) struct Clock {
    last: Mutex<Hlc>,
}

impl Clock {
    pub(crate) fn new(last: Hlc) -> Self {
        Clock {
            last: Mutex::new(last),
        }
    }

    /// A new reading.
    pub(crate) fn now(&self) -> Hlc {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let wall = now_millis();
        let next = if wall > last.millis {
            Hlc {
                millis: wall,
                counter: 0,
            }
        } else if last.counter == u32::MAX {
            Hlc {
                millis: last.millis + 1,
                counter: 0,
            }
        } else {
            Hlc {
                millis: last.millis,
                counter: last.counter + 1,
            }
        };
        *last = next;
        next
    }

    /// Moves the clock past a reading seen in a record from another writer.
    pub(crate) fn observe(&self, seen: Hlc) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if seen > *last {
            *last = seen;
        }
    }

    /// The last reading handed out or observed.
    pub(crate) fn last(&self) -> Hlc {
        *self.last.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_successor_is_the_next_stamp_in_byte_order() {
        let stamp = |millis, counter, writer: [u8; 32]| VersionStamp {
            hlc: Hlc { millis, counter },
            writer: WriterId(writer),
        };
        let mut last_ff = [0u8; 32];
        last_ff[31] = 0xff;
        let mut carried = [0u8; 32];
        carried[30] = 1;
        let cases = [
            (stamp(5, 0, [1; 32]), {
                let mut w = [1; 32];
                w[31] = 2;
                stamp(5, 0, w)
            }),
            (stamp(5, 0, last_ff), stamp(5, 0, carried)),
            (stamp(5, 3, [0xff; 32]), stamp(5, 4, [0; 32])),
            (stamp(5, u32::MAX, [0xff; 32]), stamp(6, 0, [0; 32])),
        ];
        for (before, after) in cases {
            assert_eq!(before.successor(), after);
            assert!(after > before);
            // Nothing lies between: the 44 bytes are those of the next integer.
            let (b, a) = (before.to_bytes(), after.to_bytes());
            let next = u128::from_be_bytes(b[28..].try_into().unwrap_or_default()).wrapping_add(1);
            if next != 0 {
                assert_eq!(&a[28..], &next.to_be_bytes());
                assert_eq!(a[..28], b[..28]);
            }
        }
    }

    #[test]
    fn byte_order_is_stamp_order() {
        let a = VersionStamp {
            hlc: Hlc {
                millis: 5,
                counter: 9,
            },
            writer: WriterId([9; 32]),
        };
        let b = VersionStamp {
            hlc: Hlc {
                millis: 6,
                counter: 0,
            },
            writer: WriterId([0; 32]),
        };
        let c = VersionStamp {
            writer: WriterId([10; 32]),
            ..a
        };
        assert!(a < b && a < c && c < b);
        assert!(a.to_bytes() < b.to_bytes() && a.to_bytes() < c.to_bytes());
        assert_eq!(VersionStamp::from_bytes(&c.to_bytes()), Some(c));
    }

    #[test]
    fn the_clock_never_goes_back() {
        let clock = Clock::new(Hlc {
            millis: u64::MAX / 2,
            counter: 0,
        });
        let a = clock.now();
        let b = clock.now();
        assert!(b > a);
        clock.observe(Hlc {
            millis: u64::MAX / 2 + 10,
            counter: 3,
        });
        assert!(clock.now().millis >= u64::MAX / 2 + 10);
    }
}
