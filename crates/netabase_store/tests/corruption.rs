//! Damaged redb files: single-byte flips, 64-byte bursts and
//! truncations of a closed store of 200 records, at fixed seeded positions. Each damaged
//! copy is opened and read in full (`iter`, `get`, secondary lookups); every case ends in
//! one of four outcomes, counted per kind of damage:
//!
//! - a **panic** escaped netabase (caught here with `catch_unwind` to count it);
//! - a **typed error** (opening or some read returned `Err`);
//! - a **silent wrong answer** (no error, but records missing, changed or invented);
//! - **intact** (every answer right: the damage hit unused space).
//!
//! Separately, `check_integrity()` on a fresh copy of the same damage says whether redb
//! detects it. The table printed by `corruption_matrix_is_reported` is the one in
//! `docs/reliability.md`. `damaged_files_never_panic` states the promise of DESIGN.md
//! (invariant 6): the redb backend turns redb's own panics into typed errors.

#![cfg(feature = "redb")]

mod reliability;

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use netabase_store::backend::redb::RedbBackend;
use netabase_store::prelude::*;
use reliability::*;

const RECORDS: u64 = 200;
const SEED: u64 = 0x6e65_7461_6261_7365;

fn record(id: u64) -> User {
    User {
        id,
        name: format!("user number {id}"),
        email: format!("{id}@example.com"),
        age: (id % 7) as u32,
    }
}

/// The pristine file: 200 users written in a few transactions, closed cleanly.
fn pristine(dir: &Path) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let path = dir.join("pristine.redb");
    {
        let store = Store::<RedbBackend>::redb(&path)?;
        let users = store.open_tree::<User>();
        for chunk in (0..RECORDS).collect::<Vec<_>>().chunks(50) {
            users.put_many(chunk.iter().map(|&id| record(id)))?;
        }
    }
    Ok(std::fs::read(&path)?)
}

#[derive(Debug, Clone, Copy)]
enum Damage {
    Flip { at: usize, mask: u8 },
    Burst { at: usize, seed: u64 },
    Truncate { to: usize },
}

impl Damage {
    fn kind(&self) -> &'static str {
        match self {
            Damage::Flip { .. } => "single-byte flip",
            Damage::Burst { .. } => "64-byte burst",
            Damage::Truncate { .. } => "truncation",
        }
    }

    fn apply(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = bytes.to_vec();
        match *self {
            Damage::Flip { at, mask } => out[at] ^= mask,
            Damage::Burst { at, seed } => {
                let mut rng = Rng(seed | 1);
                let end = (at + 64).min(out.len());
                for b in &mut out[at..end] {
                    *b = rng.next() as u8;
                }
            }
            Damage::Truncate { to } => out.truncate(to),
        }
        out
    }
}

/// The fixed cases: 100 flips, 100 bursts, 30 truncations over a file of `len` bytes.
fn cases(len: usize) -> Vec<Damage> {
    let mut rng = Rng(SEED);
    let mut out = Vec::new();
    for _ in 0..100 {
        let at = (rng.next() as usize) % len;
        let mask = (rng.next() as u8) | 1;
        out.push(Damage::Flip { at, mask });
    }
    for _ in 0..100 {
        let at = (rng.next() as usize) % len;
        out.push(Damage::Burst {
            at,
            seed: rng.next(),
        });
    }
    for _ in 0..30 {
        out.push(Damage::Truncate {
            to: (rng.next() as usize) % len,
        });
    }
    out
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Panic,
    TypedError,
    SilentWrong,
    Intact,
}

/// Opens the damaged file and reads everything; `Err` is a typed error, `Ok(false)` a
/// wrong answer.
fn read_all(path: &Path) -> NetabaseResult<bool> {
    let expected: BTreeMap<u64, User> = (0..RECORDS).map(|id| (id, record(id))).collect();
    let store = Store::<RedbBackend>::redb(path)?;
    let users = store.open_tree::<User>();
    let mut right = true;
    let listed: BTreeMap<u64, User> = users
        .iter()
        .map(|r| r.map(|(_, u)| (u.id, u)))
        .collect::<NetabaseResult<_>>()?;
    right &= listed == expected;
    for (id, user) in &expected {
        right &= users.get(UserPrimaryKey(*id))?.as_ref() == Some(user);
    }
    for age in 0..7u32 {
        let mut found =
            users.get_by_secondary_key(UserSecondaryKeys::Age(UserAgeSecondaryKey(age)))?;
        found.sort_by_key(|u| u.id);
        let want: Vec<User> = expected
            .values()
            .filter(|u| u.age == age)
            .cloned()
            .collect();
        right &= found == want;
    }
    for id in (0..RECORDS).step_by(10) {
        let found = users.get_by_secondary_key(UserSecondaryKeys::Email(UserEmailSecondaryKey(
            record(id).email,
        )))?;
        right &= found == vec![record(id)];
    }
    Ok(right)
}

/// `Some(true)` when redb's integrity check flags the damage (refuses to open, reports
/// a repair, or fails), `Some(false)` when it passes, `None` when it panicked.
fn integrity_flags(path: &Path) -> Option<bool> {
    catch_unwind(AssertUnwindSafe(|| {
        match Store::<RedbBackend>::redb(path) {
            Err(_) => true,
            Ok(store) => !matches!(store.check_integrity(), Ok(true)),
        }
    }))
    .ok()
}

/// One row of the table.
#[derive(Debug, Default)]
struct Row {
    cases: u32,
    panics: u32,
    typed_errors: u32,
    silent_wrong: u32,
    intact: u32,
    integrity_flagged: u32,
    integrity_panics: u32,
    silent_wrong_flagged: u32,
}

fn run_matrix() -> Result<BTreeMap<&'static str, Row>, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let bytes = pristine(dir.path())?;
    let read_path = dir.path().join("damaged.redb");
    let check_path = dir.path().join("checked.redb");
    let mut table: BTreeMap<&'static str, Row> = BTreeMap::new();
    // redb's panics are expected here; keep their messages out of the test output.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for damage in cases(bytes.len()) {
        let damaged = damage.apply(&bytes);
        std::fs::write(&read_path, &damaged)?;
        std::fs::write(&check_path, &damaged)?;
        let outcome = match catch_unwind(AssertUnwindSafe(|| read_all(&read_path))) {
            Err(_) => Outcome::Panic,
            Ok(Err(_)) => Outcome::TypedError,
            Ok(Ok(false)) => Outcome::SilentWrong,
            Ok(Ok(true)) => Outcome::Intact,
        };
        let flagged = integrity_flags(&check_path);
        let row = table.entry(damage.kind()).or_default();
        row.cases += 1;
        match outcome {
            Outcome::Panic => row.panics += 1,
            Outcome::TypedError => row.typed_errors += 1,
            Outcome::SilentWrong => row.silent_wrong += 1,
            Outcome::Intact => row.intact += 1,
        }
        match flagged {
            Some(true) => row.integrity_flagged += 1,
            Some(false) => {}
            None => row.integrity_panics += 1,
        }
        if outcome == Outcome::SilentWrong && flagged == Some(true) {
            row.silent_wrong_flagged += 1;
        }
    }
    std::panic::set_hook(hook);
    eprintln!(
        "corruption | damage | cases | panics | typed errors | silent wrong answers | intact | flagged by check_integrity | check_integrity panicked | silent wrong answers flagged by check_integrity |"
    );
    for (kind, r) in &table {
        eprintln!(
            "corruption | {kind} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.cases,
            r.panics,
            r.typed_errors,
            r.silent_wrong,
            r.intact,
            r.integrity_flagged,
            r.integrity_panics,
            r.silent_wrong_flagged
        );
    }
    Ok(table)
}

/// The matrix runs to the end (no abort) and sees the damage: some cases end in typed
/// errors or are flagged, so the harness is not blind.
#[test]
fn corruption_matrix_is_reported() -> TestResult {
    let table = run_matrix()?;
    let total: u32 = table.values().map(|r| r.cases).sum();
    assert_eq!(total, 230);
    let seen: u32 = table
        .values()
        .map(|r| r.typed_errors + r.integrity_flagged)
        .sum();
    assert!(seen > 0, "no damage was detected at all: {table:?}");
    Ok(())
}

/// DESIGN.md invariant 6 on damaged files: a typed error, never a panic. redb 4.6 panics
/// on some damaged pages (a slice index in its B-tree code, an `unreachable!` in its
/// allocator code); the redb backend catches those at its boundary and reports
/// `NetabaseError::Corrupted`.
#[test]
fn damaged_files_never_panic() -> TestResult {
    let table = run_matrix()?;
    let panics: u32 = table.values().map(|r| r.panics).sum();
    assert_eq!(panics, 0, "{table:?}");
    Ok(())
}

/// `FileConfig::verify_on_open(true)` takes effect: damage that a plain open trusts is
/// refused at open, and so is every case that reads back silently wrong.
#[test]
fn verify_on_open_refuses_damage_a_plain_open_trusts() -> TestResult {
    let dir = tempfile::tempdir()?;
    let bytes = pristine(dir.path())?;
    let plain_path = dir.path().join("plain.redb");
    let verified_path = dir.path().join("verified.redb");
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut refused_only_when_verified = 0;
    let mut silent_wrong = 0;
    let mut silent_wrong_refused = 0;
    for damage in cases(bytes.len()) {
        let damaged = damage.apply(&bytes);
        std::fs::write(&plain_path, &damaged)?;
        std::fs::write(&verified_path, &damaged)?;
        let plain = catch_unwind(AssertUnwindSafe(|| read_all(&plain_path)));
        let verified = catch_unwind(AssertUnwindSafe(|| {
            let config = FileConfig::builder()
                .path(&verified_path)
                .verify_on_open(true)
                .build();
            Store::<RedbBackend>::new(config).map(drop)
        }));
        let verified_refused = !matches!(verified, Ok(Ok(())));
        if verified_refused && matches!(plain, Ok(Ok(_))) {
            refused_only_when_verified += 1;
        }
        if matches!(plain, Ok(Ok(false))) {
            silent_wrong += 1;
            if verified_refused {
                silent_wrong_refused += 1;
            }
        }
    }
    std::panic::set_hook(hook);
    assert!(
        refused_only_when_verified > 0,
        "no damage was refused by the verified open that a plain open read through"
    );
    assert_eq!(
        silent_wrong_refused, silent_wrong,
        "a silently wrong file opened with verify_on_open"
    );
    Ok(())
}
