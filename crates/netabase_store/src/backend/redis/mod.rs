//! The Redis backend (feature `redis`): one store shared by several processes and
//! machines through a Redis (or Valkey) server.
//!
//! **Layout.** Every key of a store starts with its prefix in braces, `{prefix}`, a
//! Redis Cluster hash tag, so that a whole store lives in one hash slot and every script
//! may touch all of it. A netabase table `t` is two keys:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{prefix}:z:t` | sorted set, every score 0 | the table's keys, ranged in byte order with `ZRANGEBYLEX` |
//! | `{prefix}:h:t` | hash | key → value |
//! | `{prefix}:tables` | sorted set, every score 0 | the names of the tables written so far |
//! | `{prefix}:version` | string (integer) | the store's version, incremented by every commit |
//!
//! **Transactions** are optimistic. A write transaction keeps its writes in an overlay
//! (like the sled backend's) that its reads merge over the server's data, so it sees its
//! own writes. Each of its reads from the server is one Lua script that also returns the
//! store's version: the first read pins it, and a later read that finds another version
//! fails with [`NetabaseError::Conflict`], so the transaction never acts on two states.
//! Its commit is one Lua script that checks the pinned version and, only if it is
//! unchanged, applies the whole overlay and increments the version: Redis runs a script
//! atomically, so other clients see all of the transaction or none of it. A stale
//! commit applies nothing and fails with [`NetabaseError::Conflict`]. Within one process
//! write transactions also take turns (a lock, as on the embedded backends), so
//! conflicts only arise between processes.
//!
//! **Read transactions are not snapshots**: each read sees the latest committed state
//! (each single read, a range chunk included, is atomic). The backend declares it
//! (`Capabilities::snapshot_reads == false`), and the typed layer then checks that a
//! record found through an index still matches it.
//!
//! **Round trips** (each one command: a plain `HGET`/`HMGET` or one `EVALSHA`): a get
//! is 1; a range is 1 per chunk (128 entries first, growing to 4,096); a secondary
//! equality query is 2 up to 1,024 matches (the index entries, then every record at
//! once); a one-shot put of a model is 2 (the replaced record, then the commit) plus 1
//! per unique secondary key (its holder). The test `redis_round_trips` counts them on
//! the server.
//!
//! **Connections** come from a small pool ([`RedisConfig::pool_size`]); one that fails
//! is dropped and a new one is opened on the next call, so the backend reconnects by
//! itself after a server restart. A call that fails on a lost connection returns
//! [`NetabaseError::Backend`]; a commit cut off that way may or may not have been
//! applied (entirely, never in part), as with any remote database.

mod config;
mod pool;
mod read;
mod scripts;
mod write;

use std::sync::{Arc, Mutex, PoisonError};

use super::{Backend, Capabilities};
use crate::error::{NetabaseError, Result};
use crate::schema::NetabaseDefinitionTrait;
use crate::typed::meta::OpenOptions;
use crate::typed::store::NetabaseStore;

pub use config::{DEFAULT_PREFIX, RedisConfig};
pub use read::RedisRead;
pub use write::RedisWrite;

use pool::Pool;
use scripts::Scripts;

const NAME: &str = "redis";

/// An engine error of a call that did `operation`.
pub(super) fn err(operation: &'static str) -> impl FnOnce(redis::RedisError) -> NetabaseError {
    move |e| NetabaseError::backend(NAME, operation, e)
}

/// The names of a store's keys on the server.
#[derive(Debug)]
pub(super) struct Keys {
    /// `{prefix}`, the hash tag every key starts with.
    tag: String,
}

impl Keys {
    fn new(prefix: &str) -> Self {
        Keys {
            tag: format!("{{{prefix}}}"),
        }
    }

    pub(super) fn version(&self) -> String {
        format!("{}:version", self.tag)
    }

    pub(super) fn tables(&self) -> String {
        format!("{}:tables", self.tag)
    }

    /// The sorted set of `table`'s keys.
    pub(super) fn order(&self, table: &str) -> String {
        format!("{}:z:{table}", self.tag)
    }

    /// The hash of `table`'s values.
    pub(super) fn values(&self, table: &str) -> String {
        format!("{}:h:{table}", self.tag)
    }
}

/// What the backend and its transactions share.
pub(super) struct Shared {
    pub(super) pool: Pool,
    pub(super) keys: Keys,
    pub(super) scripts: Scripts,
}

/// A store on a Redis (or Valkey) server. Cloning is not needed: share it through the
/// store, whose clones share the backend.
pub struct RedisBackend {
    shared: Arc<Shared>,
    /// Held by the one write transaction of this process at a time.
    writer: Mutex<()>,
    config: RedisConfig,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl RedisBackend {
    /// Connects to the server at `url` (`redis://host:port/db`) with the defaults of
    /// [`RedisConfig`].
    ///
    /// # Errors
    /// As [`RedisBackend::with_config`].
    pub fn open(url: &str) -> Result<Self> {
        Self::with_config(RedisConfig::new(url))
    }

    /// Connects as `config` describes, checking that the server answers.
    ///
    /// # Errors
    /// [`NetabaseError::Config`] naming a refused option; [`NetabaseError::Backend`]
    /// when the server cannot be reached within the connection timeout.
    pub fn with_config(config: RedisConfig) -> Result<Self> {
        config.check()?;
        let client = redis::Client::open(config.url())
            .map_err(|e| NetabaseError::config(NAME, "url", e.to_string()))?;
        let pool = Pool::new(client, &config);
        // One connection now, so that a wrong address fails here and not at first use.
        pool.with("connect to the server", |con| {
            redis::cmd("PING").query::<String>(con).map(drop)
        })?;
        Ok(RedisBackend {
            shared: Arc::new(Shared {
                pool,
                keys: Keys::new(config.prefix()),
                scripts: Scripts::new(),
            }),
            writer: Mutex::new(()),
            config,
        })
    }

    /// The configuration the backend was opened with.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// Removes every key of this store's prefix from the server (every table and the
    /// metadata), in one atomic script. Other prefixes are untouched.
    ///
    /// # Errors
    /// [`NetabaseError::Backend`] when the server fails.
    pub fn destroy(&self) -> Result<()> {
        let _guard = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let keys = &self.shared.keys;
        self.shared
            .pool
            .with("remove the store", |con| {
                self.shared
                    .scripts
                    .destroy
                    .key(keys.version())
                    .key(keys.tables())
                    .arg(keys.order(""))
                    .arg(keys.values(""))
                    .invoke::<i64>(con)
            })
            .map(drop)
    }
}

impl Backend for RedisBackend {
    type Read = RedisRead;
    type Write<'a> = RedisWrite<'a>;

    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            snapshot_reads: false,
            persistent: true,
            // A write transaction reads through the overlay of its own writes.
            read_your_writes: true,
            idle_transactions: true,
        }
    }

    fn begin_read(&self) -> Result<RedisRead> {
        Ok(RedisRead::new(Arc::clone(&self.shared)))
    }

    fn begin_write(&self) -> Result<RedisWrite<'_>> {
        let guard = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(RedisWrite::new(&self.shared, guard))
    }
}

impl<D: NetabaseDefinitionTrait> NetabaseStore<D, RedisBackend> {
    /// Opens the store of the default prefix on the Redis server at `url`
    /// (`redis://127.0.0.1:6379`). Several processes may open the same store; see
    /// [`crate::backend::redis`] for what they see of each other.
    ///
    /// # Errors
    /// [`NetabaseError::Backend`] when the server cannot be reached;
    /// [`NetabaseError::UnsupportedFormat`] or [`NetabaseError::Schema`] when the store
    /// on the server was written in another format or with an incompatible schema.
    pub fn redis(url: &str) -> Result<Self> {
        Self::from_backend(RedisBackend::open(url)?)
    }

    /// Opens the store `config` describes (server, prefix, timeouts, pool, retries).
    ///
    /// # Errors
    /// [`NetabaseError::Config`] naming a refused option; otherwise as
    /// [`NetabaseStore::redis`].
    pub fn with_redis_config(config: RedisConfig) -> Result<Self> {
        let retries = config.commit_retries();
        let backend = RedisBackend::with_config(config)?;
        Self::from_backend_with(backend, OpenOptions::default().commit_retries(retries))
    }
}
