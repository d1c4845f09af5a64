//! `netabase verify FILE [--repair]`: is every value readable and every index exact?

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use netabase_store::typed::dynamic::Finding;

use crate::Target;
use crate::failure::{Failure, Outcome};
use crate::open::{Store, Values, open_for, with_store};
use crate::progress::Bar;

/// Checks `target`; with `repair`, rebuilds the indexes after a backup copy when the
/// check found problems, brings the sync metadata in step with the records, and checks
/// again.
pub fn run(target: &Target, repair: bool) -> Outcome {
    let findings = check(target)?;
    if findings.is_empty() {
        println!("no problems found");
        return Ok(ExitCode::SUCCESS);
    }
    for finding in &findings {
        println!("problem: {finding}");
    }
    println!("{} problems found", findings.len());
    if !repair {
        println!(
            "`netabase verify --repair {}` rebuilds the indexes from the records (after a \
             backup copy)",
            target.file.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    let backup = backup(&target.file)?;
    println!("backup copy: {}", backup.display());
    let store = open_for(target, true, Values::Read)?;
    let bar = Bar::new("rebuilding");
    let rebuilt = with_store!(&store, s => s.rebuild_indexes(&mut |p| bar.report(p)));
    bar.finish();
    let entries =
        rebuilt.map_err(|e| Failure(format!("the repair failed, nothing was changed: {e}")))?;
    println!("rebuilt the indexes: {entries} entries");
    let stamped = with_store!(&store, s => s.repair_sync()).map_err(|e| {
        Failure(format!(
            "the repair of the sync metadata failed (the indexes were rebuilt): {e}"
        ))
    })?;
    if stamped > 0 {
        println!("repaired the sync metadata: {stamped} versions written");
    }
    drop(store);
    let after = check(target)?;
    for finding in &after {
        println!("problem after the repair: {finding}");
    }
    if after.is_empty() {
        println!("no problems found after the repair");
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
}

/// Runs the engine's check (redb) and the store's, returning every finding.
fn check(target: &Target) -> Outcome<Vec<Finding>> {
    // redb's integrity check needs the file opened writable (it repairs what it can).
    let store = open_for(target, true, Values::Read)?;
    let mut findings = Vec::new();
    if let Store::Redb(s) = &store {
        if s.backend().inner().check_integrity()? {
            println!("engine integrity check (redb): ok");
        } else {
            println!("engine integrity check (redb): the file was damaged and has been repaired");
        }
    } else {
        println!("engine integrity check: sled has none");
    }
    let bar = Bar::new("verifying");
    findings.extend(with_store!(&store, s => s.verify(&mut |p| bar.report(p)))?);
    bar.finish();
    let records: u64 = with_store!(&store, s => s
        .models()
        .iter()
        .map(|m| s.len(&m.table))
        .sum::<netabase_store::Result<u64>>())?;
    let models = with_store!(&store, s => s.models().len());
    println!("checked {models} models, {records} records");
    Ok(findings)
}

/// Copies the database (a redb file or a sled directory) next to itself.
fn backup(path: &Path) -> Outcome<PathBuf> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".backup-{secs}"));
    let to = PathBuf::from(name);
    if to.exists() {
        return Err(Failure(format!(
            "the backup {} exists already",
            to.display()
        )));
    }
    copy(path, &to).map_err(|e| {
        Failure(format!(
            "cannot copy {} to {}: {e}",
            path.display(),
            to.display()
        ))
    })?;
    Ok(to)
}

fn copy(from: &Path, to: &Path) -> std::io::Result<()> {
    if from.is_dir() {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            copy(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(())
    } else {
        std::fs::copy(from, to).map(drop)
    }
}
