//! The overlay checked against a `BTreeMap` model: every read inside a write
//! transaction, and the committed state, must equal the model's.

use super::*;
use crate::backend::{Backend, Direction, Entry, RawRange, ReadTxn, WriteOp, WriteTxn};
use std::collections::BTreeMap;
use std::ops::Bound;

type Model = BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>;

fn expected(model: &Model, table: &str, range: &RawRange, direction: Direction) -> Vec<Entry> {
    let mut out: Vec<Entry> = model
        .get(table)
        .into_iter()
        .flatten()
        .filter(|(k, _)| range.contains(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if direction == Direction::Reverse {
        out.reverse();
    }
    out
}

fn bound(key: Vec<u8>, kind: u64) -> Bound<Vec<u8>> {
    match kind {
        0 => Bound::Included(key),
        1 => Bound::Excluded(key),
        _ => Bound::Unbounded,
    }
}

#[test]
fn overlay_reads_and_commits_match_a_model() -> Result<()> {
    let backend = SledBackend::temp()?;
    let mut committed: Model = BTreeMap::new();
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let tables = ["a", "b", "c"];
    for round in 0..80 {
        let mut model = committed.clone();
        let txn = backend.begin_write()?;
        for _ in 0..next(40) + 1 {
            let table = tables[next(3) as usize];
            let key = vec![next(30) as u8];
            match next(20) {
                0..=9 => {
                    let value = vec![round as u8, next(255) as u8];
                    txn.put(table, &key, &value)?;
                    model
                        .entry(table.into())
                        .or_default()
                        .insert(key.clone(), value);
                }
                10..=15 => {
                    let was = model.get_mut(table).and_then(|t| t.remove(&key)).is_some();
                    assert_eq!(txn.delete(table, &key)?, was);
                }
                16 => {
                    let key2 = vec![next(30) as u8];
                    txn.apply(&[WriteOp::Delete {
                        table,
                        key: key2.clone(),
                    }])?;
                    if let Some(t) = model.get_mut(table) {
                        t.remove(&key2);
                    }
                }
                _ if next(4) == 0 => {
                    txn.clear(table)?;
                    model.remove(table);
                }
                _ => {}
            }
            // Every read path agrees with the model at every step.
            let range = RawRange {
                start: bound(vec![next(32) as u8], next(3)),
                end: bound(vec![next(32) as u8], next(3)),
            };
            for direction in [Direction::Forward, Direction::Reverse] {
                assert_eq!(
                    crate::backend::collect_range(&txn, table, range.clone(), direction)?,
                    expected(&model, table, &range, direction),
                    "range {range:?} {direction:?} of {table} in round {round}"
                );
            }
            assert_eq!(
                txn.len(table)?,
                model.get(table).map_or(0, |t| t.len() as u64)
            );
            assert_eq!(
                txn.get(table, &key)?,
                model.get(table).and_then(|t| t.get(&key)).cloned()
            );
        }
        if next(3) == 0 {
            drop(txn);
        } else {
            txn.commit()?;
            committed = model;
        }
        let read = backend.begin_read()?;
        for table in tables {
            assert_eq!(
                crate::backend::collect_range(&read, table, RawRange::all(), Direction::Forward)?,
                expected(&committed, table, &RawRange::all(), Direction::Forward),
                "committed {table} after round {round}"
            );
        }
    }
    Ok(())
}

#[test]
fn a_long_merged_scan_crosses_chunks() -> Result<()> {
    let backend = SledBackend::temp()?;
    let txn = backend.begin_write()?;
    for i in 0u32..3000 {
        txn.put("t", &(i * 2).to_be_bytes(), b"base")?;
    }
    txn.commit()?;
    let txn = backend.begin_write()?;
    for i in 0u32..3000 {
        txn.put("t", &(i * 2 + 1).to_be_bytes(), b"new")?;
        if i % 3 == 0 {
            txn.delete("t", &(i * 2).to_be_bytes())?;
        }
    }
    let keys: Vec<u32> =
        crate::backend::collect_range(&txn, "t", RawRange::all(), Direction::Reverse)?
            .into_iter()
            .map(|(k, _)| u32::from_be_bytes([k[0], k[1], k[2], k[3]]))
            .collect();
    assert_eq!(keys.len(), 6000 - 1000);
    assert!(keys.windows(2).all(|w| w[0] > w[1]));
    assert_eq!(txn.len("t")?, 5000);
    Ok(())
}
