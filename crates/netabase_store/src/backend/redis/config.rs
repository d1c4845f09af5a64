//! [`RedisConfig`]: where the server is and how the backend talks to it.

use std::time::Duration;

use super::NAME;
use crate::error::{NetabaseError, Result};
use crate::typed::meta::DEFAULT_COMMIT_RETRIES;

/// The key prefix used when none is given.
pub const DEFAULT_PREFIX: &str = "netabase";

/// Where and how to open a store on a Redis server: the server counterpart of
/// [`crate::FileConfig`]. Every option takes effect; a value the backend cannot honour
/// is refused with [`NetabaseError::Config`] when the store is opened.
///
/// | option | default | effect |
/// |---|---|---|
/// | `url` | (required) | the server, `redis://[user:password@]host:port[/db]` (or `redis+unix://`); a URL the client cannot parse is refused |
/// | `prefix` | `netabase` | every key of the store starts with `{prefix}` (a Redis Cluster hash tag), so several stores share one server; empty, or containing `{` or `}`, is refused |
/// | `connect_timeout` | 5 s | the longest a new connection may take; zero is refused |
/// | `io_timeout` | 30 s | the longest one command may wait for the server; zero is refused |
/// | `pool_size` | 4 | the most connections open at once (callers beyond it wait); zero is refused |
/// | `commit_retries` | 16 | runs of a one-shot write or a batch after a conflict ([`crate::OpenOptions::commit_retries`]) |
///
/// # Examples
/// ```
/// # #[cfg(feature = "redis")] {
/// use std::time::Duration;
/// use netabase_store::backend::redis::RedisConfig;
///
/// let config = RedisConfig::new("redis://127.0.0.1:6379")
///     .with_prefix("billing")
///     .with_pool_size(8)
///     .with_connect_timeout(Duration::from_secs(2));
/// assert_eq!(config.prefix(), "billing");
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct RedisConfig {
    url: String,
    prefix: String,
    connect_timeout: Duration,
    io_timeout: Duration,
    pool_size: usize,
    commit_retries: u32,
}

impl RedisConfig {
    /// The default configuration for the server at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            prefix: DEFAULT_PREFIX.to_owned(),
            connect_timeout: Duration::from_secs(5),
            io_timeout: Duration::from_secs(30),
            pool_size: 4,
            commit_retries: DEFAULT_COMMIT_RETRIES,
        }
    }

    /// The key prefix: stores with different prefixes share a server without seeing
    /// each other.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Sets the key prefix (default `netabase`).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The longest a new connection may take.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// Sets the longest a new connection may take (default 5 s).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The longest one command may wait for the server.
    pub fn io_timeout(&self) -> Duration {
        self.io_timeout
    }

    /// Sets the longest one command may wait for the server (default 30 s).
    pub fn with_io_timeout(mut self, timeout: Duration) -> Self {
        self.io_timeout = timeout;
        self
    }

    /// The most connections open at once.
    pub fn pool_size(&self) -> usize {
        self.pool_size
    }

    /// Sets the most connections open at once (default 4).
    pub fn with_pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// Runs of a one-shot write or a batch after a conflict.
    pub fn commit_retries(&self) -> u32 {
        self.commit_retries
    }

    /// Sets the runs of a one-shot write or a batch after a conflict (default 16).
    pub fn with_commit_retries(mut self, retries: u32) -> Self {
        self.commit_retries = retries;
        self
    }

    /// Refuses the values the backend cannot honour.
    pub(super) fn check(&self) -> Result<()> {
        if self.prefix.is_empty() || self.prefix.contains(['{', '}']) {
            return Err(NetabaseError::config(
                NAME,
                "prefix",
                format!(
                    "`{}` cannot be a hash tag: it must be non-empty and hold no `{{` or `}}`",
                    self.prefix
                ),
            ));
        }
        if self.connect_timeout.is_zero() {
            return Err(NetabaseError::config(
                NAME,
                "connect_timeout",
                "a zero timeout would fail every connection",
            ));
        }
        if self.io_timeout.is_zero() {
            return Err(NetabaseError::config(
                NAME,
                "io_timeout",
                "a zero timeout would fail every command",
            ));
        }
        if self.pool_size == 0 {
            return Err(NetabaseError::config(
                NAME,
                "pool_size",
                "at least one connection is needed",
            ));
        }
        Ok(())
    }
}
