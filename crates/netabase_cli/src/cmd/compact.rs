//! `netabase compact FILE`: gives freed pages back to the file system.

use std::process::ExitCode;

use crate::failure::Outcome;
use crate::open::{Store, open};
use crate::{Target, cmd::disk_size};

/// Compacts `target` (redb); on sled, says why there is nothing to do.
pub fn run(target: &Target) -> Outcome {
    let before = disk_size(&target.file);
    match open(target, true)? {
        Store::Redb(s) => {
            let compacted = s.backend().inner().compact()?;
            drop(s);
            let after = disk_size(&target.file);
            if compacted {
                println!(
                    "compacted {}: {before} -> {after} bytes",
                    target.file.display()
                );
            } else {
                println!(
                    "{} was already compact ({after} bytes)",
                    target.file.display()
                );
            }
        }
        Store::Sled(_) => println!(
            "{}: sled compacts its segments by itself; nothing to do ({before} bytes)",
            target.file.display()
        ),
    }
    Ok(ExitCode::SUCCESS)
}
