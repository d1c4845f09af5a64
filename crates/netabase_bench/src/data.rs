//! The benchmark models and the deterministic data they are filled with.

use serde::{Deserialize, Serialize};

/// The netabase schema of the benchmarks: a model with one secondary key and one with
/// five.
#[netabase_store::prelude::netabase_definition_module(BenchDefinition, BenchKeys)]
pub mod schema {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    /// A record with a `u64` primary key, a short name and one non-unique index.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(BenchDefinition)]
    pub struct Item {
        /// The primary key.
        #[primary_key]
        pub id: u64,
        /// A 16–24 byte name.
        pub name: String,
        /// A non-unique secondary key; about ten records share each value.
        #[secondary_key]
        pub group: u32,
    }

    /// The same record with five non-unique secondary keys.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(BenchDefinition)]
    pub struct Wide {
        /// The primary key.
        #[primary_key]
        pub id: u64,
        /// A 16–24 byte name.
        pub name: String,
        /// First secondary key.
        #[secondary_key]
        pub k1: u32,
        /// Second secondary key.
        #[secondary_key]
        pub k2: u32,
        /// Third secondary key.
        #[secondary_key]
        pub k3: u32,
        /// Fourth secondary key.
        #[secondary_key]
        pub k4: u32,
        /// Fifth secondary key.
        #[secondary_key]
        pub k5: u32,
    }
}

/// The plain data of one record, shared by every contender (each converts it into its
/// own model type outside the timed section).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The primary key.
    pub id: u64,
    /// A 16–24 byte name.
    pub name: String,
    /// The secondary key(s): one for `Item`, five for `Wide`.
    pub keys: [u32; 5],
}

/// A small, fast, deterministic generator (splitmix64), so that every run and every
/// contender sees the same data.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    /// A generator with the given seed.
    pub fn new(seed: u64) -> Self {
        SplitMix(seed)
    }

    /// The next pseudo-random number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `bound` (`bound > 0`).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }
}

/// The number of distinct secondary-key values for `n` records: about ten records share
/// each value, so an equality query returns about ten records at every size.
pub fn groups(n: usize) -> u32 {
    u32::try_from((n / 10).max(1)).unwrap_or(u32::MAX)
}

/// `n` records with distinct random primary keys, in random order, starting from record
/// number `start` of the same sequence (so batches of a large load do not repeat keys).
pub fn records(start: u64, n: usize, groups: u32) -> Vec<Record> {
    (start..start + n as u64)
        .map(|i| record(i, groups))
        .collect()
}

/// Record number `i` of the deterministic sequence.
pub fn record(i: u64, groups: u32) -> Record {
    // The primary key is a bijection of `i` (odd multiplier, xor-shift), so keys never
    // collide and arrive in random order.
    let id = mix(i);
    let mut rng = SplitMix::new(id);
    let len = 16 + rng.below(9) as usize;
    let mut name = format!("user-{i:x}-");
    while name.len() < len {
        name.push(char::from(b'a' + rng.below(26) as u8));
    }
    name.truncate(len);
    let g = u64::from(groups);
    let keys = [
        rng.below(g) as u32,
        rng.below(g) as u32,
        rng.below(g) as u32,
        rng.below(g) as u32,
        rng.below(g) as u32,
    ];
    Record { id, name, keys }
}

/// A bijection on `u64`: spreads consecutive numbers over the key space.
pub fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z ^= z >> 32;
    z.wrapping_mul(0xD6E8_FEB8_6659_FD93)
}

/// `count` primary keys of `records`, chosen at random (with repetition).
pub fn sample_ids(records: &[Record], count: usize, seed: u64) -> Vec<u64> {
    let mut rng = SplitMix::new(seed);
    (0..count)
        .map(|_| records[rng.below(records.len() as u64) as usize].id)
        .collect()
}

/// `count` secondary-key values chosen at random below `groups`.
pub fn sample_groups(groups: u32, count: usize, seed: u64) -> Vec<u32> {
    let mut rng = SplitMix::new(seed);
    (0..count)
        .map(|_| rng.below(u64::from(groups)) as u32)
        .collect()
}

impl From<&Record> for schema::Item {
    fn from(r: &Record) -> Self {
        schema::Item {
            id: r.id,
            name: r.name.clone(),
            group: r.keys[0],
        }
    }
}

impl From<&Record> for schema::Wide {
    fn from(r: &Record) -> Self {
        schema::Wide {
            id: r.id,
            name: r.name.clone(),
            k1: r.keys[0],
            k2: r.keys[1],
            k3: r.keys[2],
            k4: r.keys[3],
            k5: r.keys[4],
        }
    }
}
