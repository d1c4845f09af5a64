//! A small pool of connections: a connection that fails is dropped, so the next call
//! opens a new one (the backend reconnects after a server restart by itself).

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

use redis::{Connection, RedisError, RedisResult};

use super::config::RedisConfig;
use super::err;
use crate::error::Result;

struct Slots {
    idle: Vec<Connection>,
    /// Connections open, idle or lent.
    open: usize,
}

pub(crate) struct Pool {
    client: redis::Client,
    slots: Mutex<Slots>,
    freed: Condvar,
    size: usize,
    connect_timeout: Duration,
    io_timeout: Duration,
}

impl Pool {
    pub(super) fn new(client: redis::Client, config: &RedisConfig) -> Self {
        Pool {
            client,
            slots: Mutex::new(Slots {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
            size: config.pool_size(),
            connect_timeout: config.connect_timeout(),
            io_timeout: config.io_timeout(),
        }
    }

    /// Runs `f` on a connection of the pool; `operation` names it in errors.
    pub(crate) fn with<R>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&mut Connection) -> RedisResult<R>,
    ) -> Result<R> {
        let mut con = self.take().map_err(err(operation))?;
        let result = f(&mut con);
        let healthy = match &result {
            Ok(_) => true,
            Err(e) => !broken(e),
        };
        self.give_back(healthy.then_some(con));
        result.map_err(err(operation))
    }

    /// An idle connection, or a new one while fewer than `size` are open; waits for one
    /// to be given back otherwise.
    fn take(&self) -> RedisResult<Connection> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(con) = slots.idle.pop() {
                return Ok(con);
            }
            if slots.open < self.size {
                slots.open += 1;
                break;
            }
            slots = self
                .freed
                .wait(slots)
                .unwrap_or_else(PoisonError::into_inner);
        }
        drop(slots);
        let opened = self.connect();
        if opened.is_err() {
            self.give_back(None);
        }
        opened
    }

    fn connect(&self) -> RedisResult<Connection> {
        let con = self
            .client
            .get_connection_with_timeout(self.connect_timeout)?;
        con.set_read_timeout(Some(self.io_timeout))?;
        con.set_write_timeout(Some(self.io_timeout))?;
        Ok(con)
    }

    /// Returns a lent connection, or `None` to close it (it failed).
    fn give_back(&self, con: Option<Connection>) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        match con {
            Some(con) => slots.idle.push(con),
            None => slots.open -= 1,
        }
        drop(slots);
        self.freed.notify_one();
    }
}

/// Whether the error leaves the connection unusable (the server went away, a timeout
/// left a reply unread), as opposed to an error reply on a healthy connection.
fn broken(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_timeout() || e.is_unrecoverable_error()
}
