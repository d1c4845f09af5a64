//! redb's panics on damaged data, turned into errors.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::NAME;
use crate::error::{NetabaseError, Result};

/// Whether redb has panicked on this database's data: shared by the backend and its
/// transactions. redb panics on some damaged pages (a slice index out of bounds, an
/// `unreachable!`) instead of returning `StorageError::Corrupted`; every engine call
/// runs under [`Damage::run`], which turns such a panic into
/// [`NetabaseError::Corrupted`] and marks the database damaged, after which write
/// transactions are refused until it is reopened.
#[derive(Clone, Default)]
pub(super) struct Damage(Arc<AtomicBool>);

impl Damage {
    /// Runs the engine call `f`, catching a panic inside redb.
    #[inline]
    pub(super) fn run<T>(
        &self,
        operation: &'static str,
        table: Option<&str>,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        // Unwind safety: a panic leaves redb's in-memory state of this database
        // unknown, so after one nothing is written through it again (`begin_write`
        // refuses), and the caller gets an error instead of that state. A panic cannot
        // break memory safety; at worst later reads fail again, as errors.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Ok(result) => result,
            Err(payload) => {
                self.0.store(true, Ordering::SeqCst);
                let detail = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "no message".to_owned());
                Err(NetabaseError::corrupted(
                    NAME,
                    operation,
                    table,
                    format!("redb panicked: {detail}"),
                ))
            }
        }
    }

    pub(super) fn is_damaged(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
