//! Opening a store from a configuration: [`FileConfig`] and [`BackendStore`].
//!
//! One configuration type serves every backend, and one trait opens a store from it, so
//! switching backend is a change of one type:
//!
//! ```
//! # use netabase_store::prelude::*;
//! # #[netabase_definition_module(AppDefinition, AppKeys)]
//! # pub mod app {
//! #     use netabase_store::prelude::*;
//! #     use serde::{Deserialize, Serialize};
//! #     #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
//! #     #[netabase(AppDefinition)]
//! #     pub struct Note { #[primary_key] pub id: u64, pub text: String }
//! # }
//! # use app::*;
//! use netabase_store::backend::redb::RedbBackend;
//! use netabase_store::config::{BackendStore, FileConfig};
//!
//! type Backend = RedbBackend; // or SledBackend, or MemoryBackend
//!
//! # let dir = tempfile::tempdir()?;
//! let config = FileConfig::builder()
//!     .path(dir.path().join("notes.db"))
//!     .cache_size_mb(64)
//!     .build();
//! let store = NetabaseStore::<AppDefinition, Backend>::new(config)?;
//! store.open_tree::<Note>().put(Note { id: 1, text: "hello".into() })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Every option either takes effect on a backend or is refused by it with
//! [`NetabaseError::Config`] naming the option and the backend; none is silently
//! ignored. What each backend does with each option is listed on [`FileConfig`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::backend::Backend;
use crate::error::{NetabaseError, Result};
use crate::schema::NetabaseDefinitionTrait;
use crate::typed::store::NetabaseStore;

/// The cache size used when none is given, in mebibytes.
pub const DEFAULT_CACHE_SIZE_MB: u64 = 256;

/// How often a store opened with `use_fsync(false)` makes its commits durable when none
/// is given (sled's own background flush interval).
pub const DEFAULT_DURABLE_EVERY: Duration = Duration::from_millis(500);

/// Where and how to open a file-backed store.
///
/// | option | default | redb | sled | memory |
/// |---|---|---|---|---|
/// | `path` | (required) | the database file | the database directory | a label only: nothing is written |
/// | `cache_size_mb` | 256 | page cache size | `cache_capacity` | refused when set |
/// | `create_if_missing` | `true` | creates the file | creates the directory | `false` is refused (an in-memory database never exists beforehand) |
/// | `truncate` | `false` | deletes every table on open | drops every tree on open | accepted (it always starts empty) |
/// | `read_only` | `false` | redb's read-only open (shared lock, no repair) | writes refused by the store; sled itself has no read-only mode | writes refused |
/// | `use_fsync` | `true` | `Durability::Immediate`, or `Durability::None` when off (see `durable_every`) | flush on every commit, or sled's background flush when off | `true` refused when set (nothing is durable) |
/// | `verify_on_open` | `false` | redb's integrity check at every open (every page checksum; a damaged file fails to open with an error instead of being trusted); redb already runs it after an unclean shutdown; refused with `read_only` (the check repairs and commits) | refused when `true`: sled has no integrity check | refused when `true` |
/// | `durable_every` | 500 ms | with `use_fsync(false)`: the first commit after this interval since the last durable one is made durable (`Durability::Immediate`) | the background flush interval (`flush_every_ms`); zero flushes on every commit | refused when set: nothing is durable in memory |
///
/// **What `use_fsync(false)` may lose in a crash** (of the process, the operating
/// system or the power: both engines keep what is not yet durable in their own memory,
/// so a killed process loses it too): on redb, every commit becomes durable when a
/// later commit is made durable, and one is as soon as `durable_every` has passed since
/// the last durable commit. So while the application keeps writing, a crash loses at
/// most the commits acknowledged during the last `durable_every` plus the duration of
/// one commit; commits followed by no further commit stay volatile until the next commit
/// or a clean close (dropping the store makes them durable); the crash-loop suite
/// (`tests/crash_loop.rs`) checks this bound with 500 ms of slack. On sled a background
/// thread writes and syncs every `durable_every` whether or not more commits follow, but
/// this is no bound: under sustained writes sled falls behind, and a crash-loop soak lost
/// commits acknowledged up to 6.1 s before the crash with the default 500 ms (see
/// `docs/reliability.md`). Call `flush()` or use `use_fsync(true)` where that matters.
///
/// Conflicting options are refused when the store is opened: `read_only` with `truncate`.
///
/// # Examples
/// ```
/// use netabase_store::config::FileConfig;
///
/// let config = FileConfig::new("app.db");
/// assert_eq!(config.cache_size_mb(), 256);
/// assert!(config.create_if_missing() && config.use_fsync() && !config.read_only());
///
/// let tuned = FileConfig::builder()
///     .path("app.db")
///     .cache_size_mb(1024)
///     .use_fsync(false)
///     .build();
/// assert!(!tuned.use_fsync());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileConfig {
    path: PathBuf,
    /// `None` until set, so that backends without a cache can tell a choice from the
    /// default.
    cache_size_mb: Option<u64>,
    create_if_missing: bool,
    truncate: bool,
    read_only: bool,
    /// `None` until set, for the same reason as `cache_size_mb`.
    use_fsync: Option<bool>,
    /// `None` until set, for the same reason as `cache_size_mb`.
    durable_every: Option<Duration>,
    verify_on_open: bool,
}

impl FileConfig {
    /// The default configuration for the database at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileConfig {
            path: path.into(),
            cache_size_mb: None,
            create_if_missing: true,
            truncate: false,
            read_only: false,
            use_fsync: None,
            durable_every: None,
            verify_on_open: false,
        }
    }

    /// A builder; [`FileConfigBuilder::build`] exists once a path has been given.
    pub fn builder() -> FileConfigBuilder<()> {
        FileConfigBuilder {
            path: (),
            cache_size_mb: None,
            create_if_missing: true,
            truncate: false,
            read_only: false,
            use_fsync: None,
            durable_every: None,
            verify_on_open: false,
        }
    }

    /// The database path (a file for redb, a directory for sled).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cache size in mebibytes (default 256).
    pub fn cache_size_mb(&self) -> u64 {
        self.cache_size_mb.unwrap_or(DEFAULT_CACHE_SIZE_MB)
    }

    /// The cache size in bytes.
    pub fn cache_size_bytes(&self) -> u64 {
        self.cache_size_mb().saturating_mul(1024 * 1024)
    }

    /// Whether a missing database is created (default `true`).
    pub fn create_if_missing(&self) -> bool {
        self.create_if_missing
    }

    /// Whether an existing database is emptied on open (default `false`).
    pub fn truncate(&self) -> bool {
        self.truncate
    }

    /// Whether the store refuses writes (default `false`).
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// Whether every commit is durable when it returns (default `true`).
    pub fn use_fsync(&self) -> bool {
        self.use_fsync.unwrap_or(true)
    }

    /// With `use_fsync(false)`, the longest a commit stays volatile while writes continue
    /// (default 500 ms; see the table on [`FileConfig`] for the exact bound per backend).
    pub fn durable_every(&self) -> Duration {
        self.durable_every.unwrap_or(DEFAULT_DURABLE_EVERY)
    }

    /// Whether the engine's integrity check runs at every open (default `false`).
    pub fn verify_on_open(&self) -> bool {
        self.verify_on_open
    }

    /// The explicitly chosen durability interval, if any (backends that cannot honour it
    /// refuse it when it is set).
    pub(crate) fn durable_every_if_set(&self) -> Option<Duration> {
        self.durable_every
    }

    /// Whether the cache size was chosen explicitly.
    pub(crate) fn cache_size_is_set(&self) -> bool {
        self.cache_size_mb.is_some()
    }

    /// The explicitly chosen fsync setting, if any.
    pub(crate) fn use_fsync_if_set(&self) -> Option<bool> {
        self.use_fsync
    }

    /// Checks the options that no backend can combine, and whether the database must
    /// (and does) exist. `must_exist` is set by [`BackendStore::open`].
    ///
    /// # Errors
    /// [`NetabaseError::Config`] for conflicting options; [`NetabaseError::Io`] with kind
    /// `NotFound` when the database is missing and may not be created.
    #[cfg_attr(not(any(feature = "redb", feature = "sled")), allow(dead_code))]
    pub(crate) fn check(&self, backend: &'static str, must_exist: bool) -> Result<()> {
        if self.read_only && self.truncate {
            return Err(NetabaseError::config(
                backend,
                "truncate",
                "a store opened read-only cannot be truncated",
            ));
        }
        let may_create = self.create_if_missing && !self.read_only && !must_exist;
        if !may_create && !self.path.exists() {
            let why = if must_exist {
                "no database here (`open` never creates one; use `new` to create it)"
            } else if self.read_only {
                "no database here (a read-only store is never created)"
            } else {
                "no database here and `create_if_missing` is false"
            };
            return Err(NetabaseError::io(
                "open the database at",
                self.path.clone(),
                std::io::Error::new(std::io::ErrorKind::NotFound, why),
            ));
        }
        Ok(())
    }
}

/// Builds a [`FileConfig`]. `P` is `()` until [`FileConfigBuilder::path`] is called, so a
/// configuration without a path does not compile.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct FileConfigBuilder<P> {
    path: P,
    cache_size_mb: Option<u64>,
    create_if_missing: bool,
    truncate: bool,
    read_only: bool,
    use_fsync: Option<bool>,
    durable_every: Option<Duration>,
    verify_on_open: bool,
}

impl<P> FileConfigBuilder<P> {
    /// The database path (a file for redb, a directory for sled).
    pub fn path(self, path: impl Into<PathBuf>) -> FileConfigBuilder<PathBuf> {
        FileConfigBuilder {
            path: path.into(),
            cache_size_mb: self.cache_size_mb,
            create_if_missing: self.create_if_missing,
            truncate: self.truncate,
            read_only: self.read_only,
            use_fsync: self.use_fsync,
            durable_every: self.durable_every,
            verify_on_open: self.verify_on_open,
        }
    }

    /// The engine's cache size in mebibytes (default 256).
    pub fn cache_size_mb(mut self, megabytes: u64) -> Self {
        self.cache_size_mb = Some(megabytes);
        self
    }

    /// Whether a missing database is created (default `true`).
    pub fn create_if_missing(mut self, create: bool) -> Self {
        self.create_if_missing = create;
        self
    }

    /// Whether an existing database is emptied when opened (default `false`).
    pub fn truncate(mut self, truncate: bool) -> Self {
        self.truncate = truncate;
        self
    }

    /// Whether the store refuses writes (default `false`). A read-only store is never
    /// created: the database must exist.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Whether the engine checks the whole database at every open (default `false`):
    /// slower to open, but a file damaged outside the engine is refused with an error
    /// instead of being trusted. Only redb has such a check; the other backends refuse
    /// `true`.
    pub fn verify_on_open(mut self, verify: bool) -> Self {
        self.verify_on_open = verify;
        self
    }

    /// Whether every commit is durable when it returns (default `true`). Off, commits are
    /// faster and survive a clean close, but those of the last [`Self::durable_every`]
    /// interval may be lost in a crash (the exact bound is on [`FileConfig`]).
    pub fn use_fsync(mut self, fsync: bool) -> Self {
        self.use_fsync = Some(fsync);
        self
    }

    /// With `use_fsync(false)`, how often commits are made durable (default 500 ms): the
    /// most a crash can lose while writes continue. A zero interval makes every commit
    /// durable. Without effect when every commit is durable anyway (`use_fsync(true)`).
    pub fn durable_every(mut self, interval: Duration) -> Self {
        self.durable_every = Some(interval);
        self
    }
}

impl FileConfigBuilder<PathBuf> {
    /// The configuration.
    pub fn build(self) -> FileConfig {
        FileConfig {
            path: self.path,
            cache_size_mb: self.cache_size_mb,
            create_if_missing: self.create_if_missing,
            truncate: self.truncate,
            read_only: self.read_only,
            use_fsync: self.use_fsync,
            durable_every: self.durable_every,
            verify_on_open: self.verify_on_open,
        }
    }
}

/// A store that opens from a [`FileConfig`]: implemented by
/// [`crate::NetabaseStore`] on every backend, so that switching backend changes one type.
///
/// # Examples
/// ```
/// # use netabase_store::prelude::*;
/// # #[netabase_definition_module(AppDefinition, AppKeys)]
/// # pub mod app {
/// #     use netabase_store::prelude::*;
/// #     use serde::{Deserialize, Serialize};
/// #     #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
/// #     #[netabase(AppDefinition)]
/// #     pub struct Note { #[primary_key] pub id: u64, pub text: String }
/// # }
/// # use app::*;
/// use netabase_store::backend::memory::MemoryBackend;
/// use netabase_store::config::{BackendStore, FileConfig};
///
/// fn notes<B>(config: FileConfig) -> NetabaseResult<u64>
/// where
///     NetabaseStore<AppDefinition, B>: BackendStore<AppDefinition>,
///     B: netabase_store::backend::Backend,
/// {
///     let store = NetabaseStore::<AppDefinition, B>::new(config)?;
///     store.open_tree::<Note>().put(Note { id: 1, text: "hi".into() })?;
///     store.open_tree::<Note>().len()
/// }
///
/// # let dir = tempfile::tempdir()?;
/// assert_eq!(notes::<MemoryBackend>(FileConfig::new(dir.path().join("a")))?, 1);
/// # #[cfg(feature = "redb")]
/// assert_eq!(notes::<netabase_store::backend::redb::RedbBackend>(FileConfig::new(dir.path().join("b")))?, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait BackendStore<D>: Sized {
    /// Opens the database described by `config`, creating it when it is missing and
    /// `create_if_missing` is on (the default).
    ///
    /// # Errors
    /// [`NetabaseError::Config`] naming the option and the backend when an option is
    /// refused; [`NetabaseError::Io`] (kind `NotFound`) when the database is missing and
    /// may not be created; [`NetabaseError::Backend`] when the engine fails to open it;
    /// [`NetabaseError::UnsupportedFormat`] when it holds another netabase format.
    fn new(config: FileConfig) -> Result<Self>;

    /// Opens an existing database; never creates one.
    ///
    /// # Errors
    /// [`NetabaseError::Io`] (kind `NotFound`) when there is no database at the path;
    /// otherwise as [`BackendStore::new`].
    fn open(config: FileConfig) -> Result<Self>;

    /// A fresh store in a temporary location, deleted when the last handle is dropped:
    /// for tests and scratch work.
    ///
    /// # Errors
    /// [`NetabaseError::Io`] if the temporary location cannot be created;
    /// [`NetabaseError::Backend`] if the engine fails to open it.
    fn temp() -> Result<Self>;
}

/// A backend that opens from a [`FileConfig`]: each backend implements it in its own
/// module, and every [`NetabaseStore`] over it then implements [`BackendStore`].
pub trait ConfiguredBackend: Backend + Sized {
    /// Opens the database `config` describes; with `must_exist`, a missing database is
    /// an error even when `create_if_missing` is on.
    ///
    /// # Errors
    /// As [`BackendStore::new`].
    fn open_configured(config: &FileConfig, must_exist: bool) -> Result<Self>;

    /// A fresh database in a temporary location, removed when dropped.
    ///
    /// # Errors
    /// As [`BackendStore::temp`].
    fn open_temporary() -> Result<Self>;
}

impl<D: NetabaseDefinitionTrait, B: ConfiguredBackend> BackendStore<D> for NetabaseStore<D, B> {
    fn new(config: FileConfig) -> Result<Self> {
        Self::from_config(B::open_configured(&config, false)?, &config)
    }

    fn open(config: FileConfig) -> Result<Self> {
        Self::from_config(B::open_configured(&config, true)?, &config)
    }

    fn temp() -> Result<Self> {
        Self::from_backend(B::open_temporary()?)
    }
}
