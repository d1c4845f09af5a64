//! The byte layout of the kad tables: a format byte followed by postcard.
//!
//! Instants are converted to wall-clock time (seconds and nanoseconds since the Unix
//! epoch) on the way in and back on the way out, because a monotonic instant has no
//! meaning in another process.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use libp2p::kad::{ProviderRecord, Record, RecordKey};
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};

/// The first byte of every kad value; bumped when the layout below changes.
pub(super) const FORMAT: u8 = 1;

/// A point in wall-clock time, as stored.
///
/// Stored bytes are untrusted (corruption, a foreign writer), so decoding checks them:
/// a nanosecond field of a second or more is refused as a decode error (this encoder
/// never writes one), and every conversion below uses checked arithmetic. A time too far
/// in the future for the platform's clocks (`u64::MAX` seconds, say) is valid: it never
/// comes, so the record never expires (see [`WallTime::to_instant`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "StoredWallTime")]
pub(super) struct WallTime {
    secs: u64,
    nanos: u32,
}

/// The stored fields of a [`WallTime`] before they are checked (the same postcard layout).
#[derive(Deserialize)]
struct StoredWallTime {
    secs: u64,
    nanos: u32,
}

impl TryFrom<StoredWallTime> for WallTime {
    type Error = String;

    fn try_from(stored: StoredWallTime) -> Result<Self, String> {
        if stored.nanos >= NANOS_PER_SEC {
            return Err(format!(
                "invalid expiry: {} nanoseconds is not less than a second",
                stored.nanos
            ));
        }
        Ok(WallTime {
            secs: stored.secs,
            nanos: stored.nanos,
        })
    }
}

const NANOS_PER_SEC: u32 = 1_000_000_000;

impl WallTime {
    pub(super) fn now() -> Self {
        Self::from_system(SystemTime::now())
    }

    pub(super) fn from_system(time: SystemTime) -> Self {
        let since = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        WallTime {
            secs: since.as_secs(),
            nanos: since.subsec_nanos(),
        }
    }

    /// The wall-clock time `millis` milliseconds after the Unix epoch.
    pub(super) fn from_millis(millis: u64) -> Self {
        WallTime {
            secs: millis / 1000,
            nanos: u32::try_from(millis % 1000).unwrap_or(0) * 1_000_000,
        }
    }

    /// The system time of this wall-clock time, or `None` when it lies beyond what the
    /// platform's `SystemTime` can represent. Checked throughout: `Duration::new` would
    /// panic on `u64::MAX` seconds plus a carried second.
    fn to_system(self) -> Option<SystemTime> {
        let since = Duration::from_secs(self.secs)
            .checked_add(Duration::from_nanos(u64::from(self.nanos)))?;
        UNIX_EPOCH.checked_add(since)
    }

    /// The wall-clock time of `instant`, measured against the clocks read now.
    pub(super) fn from_instant(instant: Instant) -> Self {
        let (now_i, now_s) = (Instant::now(), SystemTime::now());
        let time = if instant >= now_i {
            now_s.checked_add(instant - now_i)
        } else {
            now_s.checked_sub(now_i - instant)
        };
        Self::from_system(time.unwrap_or(UNIX_EPOCH))
    }

    /// The instant of this wall-clock time, as an expiry: `None` (never expires) for a
    /// time so far in the future that no `SystemTime` or `Instant` represents it, which
    /// agrees with [`WallTime::expired_at`] (such a time never comes). A time so far in the
    /// past that no instant represents it maps to now, which is expired either way.
    pub(super) fn to_instant(self) -> Option<Instant> {
        let (now_i, now_s) = (Instant::now(), SystemTime::now());
        let time = self.to_system()?;
        match time.duration_since(now_s) {
            Ok(ahead) => now_i.checked_add(ahead),
            Err(behind) => Some(now_i.checked_sub(behind.duration()).unwrap_or(now_i)),
        }
    }

    /// Big-endian seconds then nanoseconds: byte order is time order (the expiry index
    /// sorts by it).
    pub(super) fn to_be_bytes(self) -> [u8; 12] {
        let mut out = [0; 12];
        out[..8].copy_from_slice(&self.secs.to_be_bytes());
        out[8..].copy_from_slice(&self.nanos.to_be_bytes());
        out
    }

    /// The inverse of [`WallTime::to_be_bytes`]; `None` unless `bytes` holds 12 bytes
    /// with fewer nanoseconds than a second.
    pub(super) fn from_be_bytes(bytes: &[u8]) -> Option<Self> {
        let secs = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
        let nanos = u32::from_be_bytes(bytes.get(8..12)?.try_into().ok()?);
        (nanos < NANOS_PER_SEC).then_some(WallTime { secs, nanos })
    }

    /// Whether a record expiring at `self` has expired at `now` (`now >= expiry`, as in
    /// libp2p's `Record::is_expired`).
    pub(super) fn expired_at(self, now: WallTime) -> bool {
        now >= self
    }
}

/// A value record as stored (the key is the table key).
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct StoredRecord {
    pub(super) value: Vec<u8>,
    pub(super) publisher: Option<Vec<u8>>,
    pub(super) expires: Option<WallTime>,
}

impl StoredRecord {
    pub(super) fn from_record(record: &Record) -> Self {
        StoredRecord {
            value: record.value.clone(),
            publisher: record.publisher.map(|p| p.to_bytes()),
            expires: record.expires.map(WallTime::from_instant),
        }
    }

    pub(super) fn into_record(self, key: RecordKey) -> Result<Record, String> {
        let publisher = self
            .publisher
            .map(|bytes| PeerId::from_bytes(&bytes))
            .transpose()
            .map_err(|e| format!("invalid publisher peer id: {e}"))?;
        Ok(Record {
            key,
            value: self.value,
            publisher,
            expires: self.expires.and_then(WallTime::to_instant),
        })
    }

    pub(super) fn is_expired(&self, now: WallTime) -> bool {
        self.expires.is_some_and(|e| e.expired_at(now))
    }
}

/// A provider record as stored (the key is the table key).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct StoredProvider {
    pub(super) provider: Vec<u8>,
    pub(super) expires: Option<WallTime>,
    pub(super) addresses: Vec<Vec<u8>>,
}

impl StoredProvider {
    pub(super) fn from_record(record: &ProviderRecord) -> Self {
        StoredProvider {
            provider: record.provider.to_bytes(),
            expires: record.expires.map(WallTime::from_instant),
            addresses: record.addresses.iter().map(|a| a.to_vec()).collect(),
        }
    }

    pub(super) fn to_record(&self, key: &RecordKey) -> Result<ProviderRecord, String> {
        let provider = PeerId::from_bytes(&self.provider)
            .map_err(|e| format!("invalid provider peer id: {e}"))?;
        let addresses = self
            .addresses
            .iter()
            .map(|bytes| Multiaddr::try_from(bytes.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("invalid provider address: {e}"))?;
        Ok(ProviderRecord {
            key: key.clone(),
            provider,
            expires: self.expires.and_then(WallTime::to_instant),
            addresses,
        })
    }

    pub(super) fn is_expired(&self, now: WallTime) -> bool {
        self.expires.is_some_and(|e| e.expired_at(now))
    }
}

/// `FORMAT ++ postcard(value)`.
pub(super) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, postcard::Error> {
    let mut out = vec![FORMAT];
    out.extend_from_slice(&postcard::to_stdvec(value)?);
    Ok(out)
}

/// The inverse of [`encode`]; the error is a sentence for [`crate::NetabaseError::Decode`].
pub(super) fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, String> {
    match bytes.split_first() {
        Some((&FORMAT, rest)) => postcard::from_bytes(rest).map_err(|e| e.to_string()),
        Some((other, _)) => Err(format!(
            "unknown kad record format {other} (this build reads {FORMAT})"
        )),
        None => Err("empty value".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_time_round_trips_through_instants() {
        let later = Instant::now() + Duration::from_secs(3600);
        let Some(back) = WallTime::from_instant(later).to_instant() else {
            panic!("an hour from now is representable");
        };
        let drift = if back > later {
            back - later
        } else {
            later - back
        };
        assert!(drift < Duration::from_millis(50), "drift {drift:?}");
    }

    #[test]
    fn absurd_expiry_decodes_without_panic() {
        // The bytes that once panicked: `u64::MAX` seconds and `u32::MAX` nanoseconds.
        let mut bytes = vec![FORMAT];
        bytes.extend(postcard::to_stdvec(&(u64::MAX, u32::MAX)).unwrap_or_default());
        assert!(decode::<WallTime>(&bytes).is_err());
        // The latest valid time decodes, never expires and has no instant.
        let mut bytes = vec![FORMAT];
        bytes.extend(postcard::to_stdvec(&(u64::MAX, NANOS_PER_SEC - 1)).unwrap_or_default());
        let latest = decode::<WallTime>(&bytes);
        assert_eq!(
            latest.map(|t| (t.to_instant(), t.expired_at(WallTime::now()))),
            Ok((None, false))
        );
    }

    #[test]
    fn wall_time_bytes_sort_in_time_order_and_round_trip() {
        let times = [
            WallTime { secs: 0, nanos: 0 },
            WallTime {
                secs: 0,
                nanos: 999_999_999,
            },
            WallTime { secs: 1, nanos: 0 },
            WallTime {
                secs: 256,
                nanos: 5,
            },
            WallTime {
                secs: u64::MAX,
                nanos: NANOS_PER_SEC - 1,
            },
        ];
        for pair in times.windows(2) {
            assert!(pair[0].to_be_bytes() < pair[1].to_be_bytes(), "{pair:?}");
        }
        for time in times {
            assert_eq!(WallTime::from_be_bytes(&time.to_be_bytes()), Some(time));
        }
        let mut bad = WallTime { secs: 1, nanos: 0 }.to_be_bytes();
        bad[8..].copy_from_slice(&NANOS_PER_SEC.to_be_bytes());
        assert_eq!(WallTime::from_be_bytes(&bad), None);
        assert_eq!(WallTime::from_be_bytes(&bad[..11]), None);
    }

    #[test]
    fn past_instants_are_expired() {
        let Some(past) = Instant::now().checked_sub(Duration::from_secs(1)) else {
            return;
        };
        assert!(WallTime::from_instant(past).expired_at(WallTime::now()));
    }
}
