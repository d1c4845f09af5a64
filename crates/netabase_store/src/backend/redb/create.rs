//! Creating a database file so that a kill never leaves one that will not open.
//!
//! redb's `Database::create` initialises a new file in place: it sizes the file, writes
//! the header without its magic number, syncs, and only then writes the magic number. A
//! process killed in between leaves a file that is not a database (no magic number,
//! nothing committed), and every later open fails with "Not a redb database: magic
//! number mismatch". So a new database is built under a temporary name in the same
//! directory, synced, and moved into place in one step; a kill at any point leaves
//! either no file at the path or a complete empty database (and at worst a stray
//! temporary file, `.<name>.<random>.new`, that nothing reads). A later writable open
//! removes such strays once they are [`STALE_AFTER`] old and no process holds them
//! ([`remove_stale_temporaries`]).
//!
//! A file that redb's own create left behind when killed (written by an earlier release,
//! or by another program using redb directly) holds nothing: it is recognised
//! ([`never_initialised`]) and replaced the same way when the open may create the
//! database, and reported with that explanation otherwise.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::Path;

use super::{NAME, open_guarded};
use crate::error::{NetabaseError, Result};

/// redb's magic number is the first 9 bytes of every database file.
const MAGIC_LEN: usize = 9;
/// The part of the file redb's interrupted create may have written (its header, in the
/// first page); past it, such a file is all zeros.
const HEADER_PAGE: usize = 4096;
/// A file longer than this is never taken for an interrupted create (redb's initial
/// file is well under a megabyte), so a damaged large database is never replaced.
const MAX_UNINITIALISED_LEN: u64 = 16 * 1024 * 1024;

const OPERATION: &str = "open the database file";

/// A temporary file of a create is taken for a killed creator's leftover once it has not
/// been modified for this long (a create takes milliseconds).
pub(super) const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// Opens the database at `path` with `builder`, first creating it atomically when it
/// does not exist, or replacing it when it is a file an interrupted create left behind
/// (only if `may_create`; otherwise that is an error saying so).
pub(super) fn open_or_create(
    path: &Path,
    builder: &redb::Builder,
    may_create: bool,
) -> Result<redb::Database> {
    // Another process may create or replace the file between the checks below: each
    // step then finds the new state on the next round.
    for _ in 0..3 {
        match std::fs::metadata(path) {
            Err(e) if e.kind() == ErrorKind::NotFound && may_create => {
                build_in_place(path, None)?;
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(NetabaseError::io("open the database at", path, e));
            }
            Err(e) => return Err(io_error(path, e)),
            Ok(_) => {
                let mut file = File::open(path).map_err(|e| io_error(path, e))?;
                if !never_initialised(&mut file).map_err(|e| io_error(path, e))? {
                    let db = open_guarded(path, || builder.create(path))?;
                    if may_create {
                        remove_stale_temporaries(path);
                    }
                    return Ok(db);
                }
                if !may_create {
                    return Err(uninitialised_error(path));
                }
                replace_uninitialised(path)?;
            }
        }
    }
    open_guarded(path, || builder.create(path))
}

/// A file-system error while opening or creating the database at `path`, reported as
/// redb's own open errors are (a backend error naming the file).
fn io_error(path: &Path, e: std::io::Error) -> NetabaseError {
    NetabaseError::backend_at(NAME, OPERATION, path, e)
}

/// The error for a file an interrupted create left behind, when it may not be replaced.
pub(super) fn uninitialised_error(path: &Path) -> NetabaseError {
    NetabaseError::backend_at(
        NAME,
        "open the database file",
        path,
        "the file holds no database: its creation was interrupted before redb wrote the \
         database header, so nothing was ever committed to it; open it writable with \
         creation allowed to create the database anew, or remove it",
    )
}

/// Whether `file` is what redb's create leaves when killed before writing the magic
/// number: empty, or no magic number and nothing but zeros past the header page.
pub(super) fn never_initialised(file: &mut File) -> std::io::Result<bool> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(true);
    }
    if len <= HEADER_PAGE as u64 || len > MAX_UNINITIALISED_LEN {
        return Ok(false);
    }
    // A database starts with the magic number: one read settles every ordinary open.
    let mut header = vec![0u8; HEADER_PAGE];
    file.read_exact(&mut header)?;
    if header[..MAGIC_LEN].iter().any(|&b| b != 0) {
        return Ok(false);
    }
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match file.read(&mut chunk)? {
            0 => return Ok(true),
            n if chunk[..n].iter().any(|&b| b != 0) => return Ok(false),
            _ => {}
        }
    }
}

/// Replaces the never-initialised file at `path` with a new empty database, under an
/// exclusive lock on it so that two processes never both replace it (on Unix; elsewhere
/// such a file is reported, not replaced).
fn replace_uninitialised(path: &Path) -> Result<()> {
    let mut held = File::options()
        .read(true)
        .open(path)
        .map_err(|e| io_error(path, e))?;
    lock_exclusive(&held).map_err(|e| io_error(path, e))?;
    // Under the lock: the path must still name this file, and it must still hold nothing.
    if !same_file(&held, path).map_err(|e| io_error(path, e))? {
        return Ok(()); // replaced meanwhile: the caller looks again
    }
    if !never_initialised(&mut held).map_err(|e| io_error(path, e))? {
        return Ok(());
    }
    build_in_place(path, Some(&held))
}

/// Waits for an exclusive lock on `file`, released when it is closed (or the process
/// dies): a second process replacing the same file waits, then finds it replaced.
#[cfg(unix)]
fn lock_exclusive(file: &File) -> std::io::Result<()> {
    rustix::fs::flock(file, rustix::fs::FlockOperation::LockExclusive).map_err(Into::into)
}

#[cfg(not(unix))]
fn lock_exclusive(_: &File) -> std::io::Result<()> {
    Ok(())
}

/// Whether `path` still names the open `file` (where that can be told; elsewhere a
/// never-initialised file is not replaced, see [`uninitialised_error`]).
#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let a = file.metadata()?;
    match std::fs::metadata(path) {
        Ok(b) => Ok(a.dev() == b.dev() && a.ino() == b.ino()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(not(unix))]
fn same_file(_: &File, path: &Path) -> std::io::Result<bool> {
    Err(std::io::Error::other(uninitialised_error(path).to_string()))
}

/// Builds an empty database under a temporary name next to `path`, syncs it and moves
/// it to `path`: over the never-initialised file `replacing` (held locked), or only if
/// nothing is there yet (a concurrent creator that got there first wins).
fn build_in_place(path: &Path, replacing: Option<&File>) -> Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map_or_else(|| "db".into(), |n| n.to_string_lossy());
    let temp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".new")
        .tempfile_in(dir)
        .map_err(|e| io_error(path, e))?;
    let db = open_guarded(temp.path(), || redb::Database::create(temp.path()))?;
    db.close()
        .map_err(|e| NetabaseError::backend_at(NAME, OPERATION, temp.path(), e))?;
    temp.as_file()
        .sync_all()
        .map_err(|e| io_error(temp.path(), e))?;
    match replacing {
        Some(_) => temp
            .persist(path)
            .map(drop)
            .map_err(|e| io_error(path, e.error))?,
        None => match temp.persist_noclobber(path) {
            Ok(_) => {}
            Err(e) if e.error.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_error(path, e.error)),
        },
    }
    sync_dir(dir).map_err(|e| io_error(path, e))
}

/// Removes the temporary files that killed creates of `path` left beside it
/// (`.<name>.<random>.new`), once they are [`STALE_AFTER`] old and (on Unix) no process
/// holds a lock on them. Best effort: a file that cannot be examined or removed stays,
/// and nothing reads it.
pub(super) fn remove_stale_temporaries(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!(".{}.", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        if !(file_name.starts_with(&prefix) && file_name.ends_with(".new")) {
            continue;
        }
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok())
            .is_some_and(|age| age >= STALE_AFTER);
        if stale && unlocked(&entry.path()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Whether no process holds a lock on the file at `path` (redb locks a database file
/// while it is open, a creator included).
#[cfg(unix)]
fn unlocked(path: &Path) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok()
}

#[cfg(not(unix))]
fn unlocked(_: &Path) -> bool {
    true
}

/// Makes the new directory entry durable (a power cut after the rename keeps it).
#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_: &Path) -> std::io::Result<()> {
    Ok(())
}
