//! Four OS processes share one store on one Redis server and run random transactions
//! against it (30 s by default; `NETABASE_REDIS_PROCESS_SECS` shortens it while
//! developing): secondary keys moving, unique keys contended, counters incremented
//! read-modify-write. Afterwards the indexes are exact, no unique key is held twice and
//! no acknowledged increment is lost; the conflicts and retries are printed.
//!
//! The processes are this test binary run again with `NETABASE_REDIS_WORKER` set,
//! running the ignored test `worker_process`.
#![cfg(feature = "redis")]

mod conformance;
mod redis_support;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use conformance::schema::*;
use conformance::{TestResult, assert_user_indexes_exact};
use netabase_store::NetabaseError;
use netabase_store::backend::redis::RedisBackend;
use netabase_store::prelude::*;
use redis_support::{RedisServer, store_on};

type Store = NetabaseStore<TestDefinition, RedisBackend>;

const PROCESSES: u64 = 4;
const COUNTERS: u32 = 4;
const USERS: u64 = 40;
/// Fewer emails than users: unique keys are contended.
const EMAILS: u64 = 30;
const PREFIX: &str = "processes";
const WORKER_ENV: &str = "NETABASE_REDIS_WORKER";

/// A small deterministic generator (xorshift64*), seeded per process.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What one process did, as it prints it.
#[derive(Debug, Default)]
struct Report {
    increments: Vec<u64>,
    /// Explicit transactions that lost a race (returned to this code, run again for
    /// counters).
    conflicts: u64,
    /// One-shot writes run again by the store after a conflict.
    retries: u64,
    /// One-shot writes that still conflicted after every retry.
    gave_up: u64,
    /// Writes refused because another record held the email.
    refused: u64,
    transactions: u64,
}

impl Report {
    fn line(&self) -> String {
        let incs: Vec<String> = self.increments.iter().map(u64::to_string).collect();
        format!(
            "worker-report increments={} conflicts={} retries={} gave_up={} refused={} transactions={}",
            incs.join(","),
            self.conflicts,
            self.retries,
            self.gave_up,
            self.refused,
            self.transactions
        )
    }

    fn parse(line: &str) -> Option<Report> {
        // The test harness may print its own words before the line on the same line.
        let start = line.find("worker-report ")?;
        let rest = line[start..].strip_prefix("worker-report ")?;
        let mut report = Report::default();
        for field in rest.split(' ') {
            let (name, value) = field.split_once('=')?;
            match name {
                "increments" => {
                    report.increments = value
                        .split(',')
                        .map(|v| v.parse().ok())
                        .collect::<Option<_>>()?;
                }
                "conflicts" => report.conflicts = value.parse().ok()?,
                "retries" => report.retries = value.parse().ok()?,
                "gave_up" => report.gave_up = value.parse().ok()?,
                "refused" => report.refused = value.parse().ok()?,
                "transactions" => report.transactions = value.parse().ok()?,
                _ => return None,
            }
        }
        Some(report)
    }
}

fn counter(id: u32, points: u32) -> Versioned {
    Versioned {
        id,
        points,
        tag: format!("counter {id}"),
    }
}

fn random_user(rng: &mut Rng) -> User {
    let id = rng.below(USERS);
    user(
        id,
        &format!("e{}@x", rng.below(EMAILS)),
        rng.below(10) as u32,
    )
}

/// Classifies the error of a write that may be refused or lose a race.
fn expected(e: NetabaseError, report: &mut Report, one_shot: bool) {
    match e {
        NetabaseError::UniqueViolation(_) => report.refused += 1,
        NetabaseError::Conflict(_) if one_shot => report.gave_up += 1,
        NetabaseError::Conflict(_) => report.conflicts += 1,
        other => panic!("unexpected error: {other}"),
    }
}

fn run_worker(url: &str, seed: u64, secs: u64) -> Report {
    let server_url = url.to_owned();
    let store: Store = NetabaseStore::with_redis_config(
        netabase_store::backend::redis::RedisConfig::new(server_url).with_prefix(PREFIX),
    )
    .unwrap_or_else(|e| panic!("worker cannot open the store: {e}"));
    let users = store.open_tree::<User>();
    let counters = store.open_tree::<Versioned>();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (seed + 1).wrapping_mul(0xD1B5_4A32_D192_ED03));
    let mut report = Report {
        increments: vec![0; COUNTERS as usize],
        ..Report::default()
    };
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        report.transactions += 1;
        match rng.below(10) {
            // One-shot put: moves the user's age and email (retried on conflict).
            0..=3 => {
                if let Err(e) = users.put(random_user(&mut rng)) {
                    expected(e, &mut report, true);
                }
            }
            4 => {
                if let Err(e) = users.remove(UserPrimaryKey(rng.below(USERS))) {
                    expected(e, &mut report, true);
                }
            }
            // A counter incremented read-modify-write, run again until it commits.
            5..=7 => {
                let id = rng.below(u64::from(COUNTERS)) as u32;
                loop {
                    let attempt = (|| {
                        let txn = store.write()?;
                        let view = txn.open_tree::<Versioned>();
                        let points = view.get(VersionedPrimaryKey(id))?.map_or(0, |c| c.points);
                        view.put(counter(id, points + 1))?;
                        txn.commit()
                    })();
                    match attempt {
                        Ok(_) => {
                            report.increments[id as usize] += 1;
                            break;
                        }
                        Err(e) if e.is_conflict() => report.conflicts += 1,
                        Err(e) => panic!("counter increment failed: {e}"),
                    }
                }
            }
            // Two users rewritten in one explicit transaction (not run again).
            _ => {
                let attempt = (|| {
                    let txn = store.write()?;
                    let view = txn.open_tree::<User>();
                    view.put(random_user(&mut rng))?;
                    view.put(random_user(&mut rng))?;
                    txn.commit()
                })();
                if let Err(e) = attempt {
                    expected(e, &mut report, false);
                }
            }
        }
    }
    report.retries = store.conflict_retries();
    let _ = counters.len();
    report
}

/// One of the processes; runs only when started by `four_processes_share_one_store`.
#[test]
#[ignore = "a worker process of `four_processes_share_one_store`"]
fn worker_process() {
    let spec = std::env::var(WORKER_ENV).unwrap_or_else(|_| {
        panic!("run by `four_processes_share_one_store` with {WORKER_ENV} set")
    });
    let parts: Vec<&str> = spec.split(' ').collect();
    let [url, seed, secs] = parts.as_slice() else {
        panic!("{WORKER_ENV} must be `<url> <seed> <seconds>`, not `{spec}`");
    };
    let parse = |v: &str| v.parse::<u64>().unwrap_or_else(|e| panic!("{v}: {e}"));
    let report = run_worker(url, parse(seed), parse(secs));
    println!("{}", report.line());
}

#[test]
fn four_processes_share_one_store() -> TestResult {
    let secs: u64 = std::env::var("NETABASE_REDIS_PROCESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let server = RedisServer::start();
    let store: Store = store_on(&server, PREFIX)?;
    let exe = std::env::current_exe()?;
    let children = (0..PROCESSES)
        .map(|seed| {
            Command::new(&exe)
                .args(["worker_process", "--exact", "--ignored", "--nocapture"])
                .args(["--test-threads", "1"])
                .env(WORKER_ENV, format!("{} {seed} {secs}", server.url()))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut reports = Vec::new();
    for child in children {
        let out = child.wait_with_output()?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "a worker failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let report = stdout
            .lines()
            .find_map(Report::parse)
            .unwrap_or_else(|| panic!("a worker printed no report:\n{stdout}"));
        reports.push(report);
    }

    // The indexes are exact (checked against the raw index tables).
    assert_user_indexes_exact(&store)?;
    // No unique key is held twice.
    let users: Vec<User> = store
        .open_tree::<User>()
        .iter()
        .map(|r| r.map(|(_, u)| u))
        .collect::<Result<_, _>>()?;
    let emails: BTreeSet<&str> = users.iter().map(|u| u.email.as_str()).collect();
    assert_eq!(emails.len(), users.len(), "an email is held by two users");
    // No acknowledged increment was lost, none was applied twice.
    let counters = store.open_tree::<Versioned>();
    let mut total = 0;
    for id in 0..COUNTERS {
        let acknowledged: u64 = reports.iter().map(|r| r.increments[id as usize]).sum();
        let stored = counters
            .get(VersionedPrimaryKey(id))?
            .map_or(0, |c| u64::from(c.points));
        assert_eq!(stored, acknowledged, "counter {id}");
        total += stored;
    }
    let sum = |f: fn(&Report) -> u64| reports.iter().map(f).sum::<u64>();
    println!(
        "redis processes: {PROCESSES} processes, {secs} s: {} transactions, {total} increments, \
         {} conflicts returned by explicit transactions, {} one-shot retries after a conflict, \
         {} one-shot writes gave up after every retry, {} unique-key refusals; {} users, \
         indexes exact",
        sum(|r| r.transactions),
        sum(|r| r.conflicts),
        sum(|r| r.retries),
        sum(|r| r.gave_up),
        sum(|r| r.refused),
        users.len()
    );
    assert!(total > 0, "no increment committed");
    Ok(())
}
