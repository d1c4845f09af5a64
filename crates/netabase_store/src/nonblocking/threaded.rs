//! The asynchronous API over any synchronous backend: each transaction runs on a thread
//! of a small pool, so an async runtime never blocks on the engine (its locks, its
//! disk, its `fsync` at commit).
//!
//! A transaction occupies one pool thread from its begin to its commit or drop; the
//! awaiting task sends it each operation and awaits the answer over a one-shot channel.
//! The pool is runtime-agnostic (plain threads and `futures` channels): it works under
//! tokio, async-std or a hand-rolled executor alike. Finished threads wait for the next
//! transaction; a few are kept, the rest exit.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::mpsc;

use futures::channel::oneshot;

use crate::backend::{
    Backend, Capabilities, Direction, Entry, RawRange, ReadTxn, WriteOp, WriteTxn,
};
use crate::error::{NetabaseError, Result};

use super::backend::{AsyncBackend, AsyncReadTxn, AsyncWriteTxn, AtCommit};
use crate::typed::changes::ChangeSet;

/// A synchronous backend used through the asynchronous API, its transactions run on a
/// pool of threads. Build it with [`Threaded::new`] or take it from a store with
/// [`crate::NetabaseStore::into_async`].
pub struct Threaded<B> {
    backend: Arc<B>,
}

impl<B> Clone for Threaded<B> {
    fn clone(&self) -> Self {
        Threaded {
            backend: Arc::clone(&self.backend),
        }
    }
}

impl<B: std::fmt::Debug> std::fmt::Debug for Threaded<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Threaded").field(&self.backend).finish()
    }
}

impl<B: Backend> Threaded<B> {
    /// The asynchronous form of `backend`.
    pub fn new(backend: B) -> Self {
        Threaded {
            backend: Arc::new(backend),
        }
    }

    /// The asynchronous form of a shared backend.
    pub fn from_shared(backend: Arc<B>) -> Self {
        Threaded { backend }
    }

    /// The synchronous backend under it.
    pub fn inner(&self) -> &Arc<B> {
        &self.backend
    }
}

type Reply<T> = oneshot::Sender<Result<T>>;

/// One operation sent to the thread that holds a transaction.
enum Command {
    Get(String, Vec<u8>, Reply<Option<Vec<u8>>>),
    GetMany(String, Vec<Vec<u8>>, Reply<Vec<Option<Vec<u8>>>>),
    Range(
        String,
        RawRange,
        Direction,
        Option<usize>,
        Reply<Vec<Entry>>,
    ),
    Len(String, Reply<u64>),
    Names(Reply<Vec<String>>),
    PutEach(String, Vec<Entry>, Reply<Vec<Option<Vec<u8>>>>),
    DeleteEach(String, Vec<Vec<u8>>, Reply<Vec<Option<Vec<u8>>>>),
    Apply(Vec<WriteOp<'static>>, Reply<()>),
    Clear(String, Reply<()>),
    Commit(Reply<()>),
    CommitAround(AtCommit, Reply<ChangeSet>),
}

/// The error of a pool thread that went away without answering (it panicked).
fn gone(backend: &'static str) -> NetabaseError {
    NetabaseError::backend(
        backend,
        "run a transaction on its pool thread",
        std::io::Error::other("the transaction's thread ended without answering"),
    )
}

/// Answers a read command on `txn`; hands back any other command.
fn serve_read<T: ReadTxn>(txn: &T, command: Command) -> Option<Command> {
    // A reply whose receiver was dropped (the caller stopped waiting) is not an error.
    match command {
        Command::Get(table, key, reply) => drop(reply.send(txn.get(&table, &key))),
        Command::GetMany(table, keys, reply) => drop(
            reply.send(
                keys.iter()
                    .map(|key| txn.get(&table, key))
                    .collect::<Result<Vec<_>>>(),
            ),
        ),
        Command::Range(table, range, direction, limit, reply) => {
            drop(reply.send(read_range(txn, &table, range, direction, limit)))
        }
        Command::Len(table, reply) => drop(reply.send(txn.len(&table))),
        Command::Names(reply) => drop(reply.send(txn.table_names())),
        other => return Some(other),
    }
    None
}

fn read_range<T: ReadTxn>(
    txn: &T,
    table: &str,
    range: RawRange,
    direction: Direction,
    limit: Option<usize>,
) -> Result<Vec<Entry>> {
    let limit = limit.unwrap_or(usize::MAX);
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    txn.for_each_in(table, range, direction, &mut |k, v| {
        out.push((k.to_vec(), v.to_vec()));
        Ok(if out.len() >= limit {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        })
    })?;
    Ok(out)
}

fn put_each<T: WriteTxn>(txn: &T, table: &str, entries: &[Entry]) -> Result<Vec<Option<Vec<u8>>>> {
    let refs: Vec<(&[u8], &[u8])> = entries
        .iter()
        .map(|(k, v)| (k.as_slice(), v.as_slice()))
        .collect();
    let mut olds = Vec::with_capacity(entries.len());
    txn.put_each(table, &refs, &mut |_, old| {
        olds.push(old.map(<[u8]>::to_vec));
        Ok(())
    })?;
    Ok(olds)
}

fn delete_each<T: WriteTxn>(
    txn: &T,
    table: &str,
    keys: &[Vec<u8>],
) -> Result<Vec<Option<Vec<u8>>>> {
    let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    let mut olds = Vec::with_capacity(keys.len());
    txn.delete_each(table, &refs, &mut |_, old| {
        olds.push(old.map(<[u8]>::to_vec));
        Ok(())
    })?;
    Ok(olds)
}

/// Serves the commands of a write transaction until it commits or its handle is
/// dropped (which rolls it back).
fn serve_write<T: WriteTxn>(txn: T, commands: &mpsc::Receiver<Command>) {
    while let Ok(command) = commands.recv() {
        let Some(command) = serve_read(&txn, command) else {
            continue;
        };
        match command {
            Command::PutEach(table, entries, reply) => {
                drop(reply.send(put_each(&txn, &table, &entries)));
            }
            Command::DeleteEach(table, keys, reply) => {
                drop(reply.send(delete_each(&txn, &table, &keys)));
            }
            Command::Apply(ops, reply) => drop(reply.send(txn.apply(&ops))),
            Command::Clear(table, reply) => drop(reply.send(txn.clear(&table))),
            Command::Commit(reply) => {
                drop(reply.send(txn.commit()));
                return;
            }
            Command::CommitAround(at_commit, reply) => {
                // On this thread, which holds the engine's write transaction: the next
                // writer cannot commit before `at_commit` is done.
                drop(reply.send(at_commit.commit_sync(txn)));
                return;
            }
            // Reads were answered above.
            _ => {}
        }
    }
}

/// A transaction running on a pool thread: the channel to it.
pub struct ThreadedTxn {
    commands: mpsc::Sender<Command>,
    backend: &'static str,
}

impl std::fmt::Debug for ThreadedTxn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadedTxn")
            .field("backend", &self.backend)
            .finish()
    }
}

impl ThreadedTxn {
    async fn ask<T>(&self, command: impl FnOnce(Reply<T>) -> Command) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .map_err(|_| gone(self.backend))?;
        answer.await.map_err(|_| gone(self.backend))?
    }
}

/// Starts a transaction on a pool thread: `serve` begins it and serves its commands,
/// after reporting through `ready` whether it began.
async fn start(
    backend: &'static str,
    serve: impl FnOnce(oneshot::Sender<Result<()>>, mpsc::Receiver<Command>) + Send + 'static,
) -> Result<ThreadedTxn> {
    let (commands, receiver) = mpsc::channel();
    let (ready, began) = oneshot::channel();
    pool::run(Box::new(move || serve(ready, receiver)));
    began.await.map_err(|_| gone(backend))??;
    Ok(ThreadedTxn { commands, backend })
}

impl<B: Backend> AsyncBackend for Threaded<B> {
    type Read = ThreadedTxn;
    type Write = ThreadedWriteTxn;

    fn name(&self) -> &'static str {
        self.backend.name()
    }

    fn capabilities(&self) -> Capabilities {
        self.backend.capabilities()
    }

    async fn begin_read(&self) -> Result<ThreadedTxn> {
        let backend = Arc::clone(&self.backend);
        start(self.backend.name(), move |ready, commands| {
            let txn = match backend.begin_read() {
                Ok(txn) => txn,
                Err(e) => return drop(ready.send(Err(e))),
            };
            if ready.send(Ok(())).is_err() {
                return;
            }
            while let Ok(command) = commands.recv() {
                // A write command cannot reach a read transaction (the types forbid
                // it); should one, dropping its reply reports the thread as gone.
                drop(serve_read(&txn, command));
            }
        })
        .await
    }

    async fn begin_write(&self) -> Result<ThreadedWriteTxn> {
        let backend = Arc::clone(&self.backend);
        let txn = start(self.backend.name(), move |ready, commands| {
            let txn = match backend.begin_write() {
                Ok(txn) => txn,
                Err(e) => return drop(ready.send(Err(e))),
            };
            if ready.send(Ok(())).is_err() {
                return;
            }
            serve_write(txn, &commands);
        })
        .await?;
        Ok(ThreadedWriteTxn(txn))
    }
}

impl AsyncReadTxn for ThreadedTxn {
    async fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.ask(|r| Command::Get(table.to_owned(), key.to_vec(), r))
            .await
    }

    async fn get_many(&self, table: &str, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        self.ask(|r| Command::GetMany(table.to_owned(), keys.to_vec(), r))
            .await
    }

    async fn range(
        &self,
        table: &str,
        range: RawRange,
        direction: Direction,
        limit: Option<usize>,
    ) -> Result<Vec<Entry>> {
        self.ask(|r| Command::Range(table.to_owned(), range, direction, limit, r))
            .await
    }

    async fn len(&self, table: &str) -> Result<u64> {
        self.ask(|r| Command::Len(table.to_owned(), r)).await
    }

    async fn table_names(&self) -> Result<Vec<String>> {
        self.ask(Command::Names).await
    }
}

/// A write transaction running on a pool thread.
#[derive(Debug)]
pub struct ThreadedWriteTxn(ThreadedTxn);

super::backend::reads_through!(ThreadedWriteTxn, 0);

impl AsyncWriteTxn for ThreadedWriteTxn {
    async fn put_each(&self, table: &str, entries: Vec<Entry>) -> Result<Vec<Option<Vec<u8>>>> {
        self.0
            .ask(|r| Command::PutEach(table.to_owned(), entries, r))
            .await
    }

    async fn delete_each(&self, table: &str, keys: Vec<Vec<u8>>) -> Result<Vec<Option<Vec<u8>>>> {
        self.0
            .ask(|r| Command::DeleteEach(table.to_owned(), keys, r))
            .await
    }

    async fn apply(&self, ops: Vec<WriteOp<'static>>) -> Result<()> {
        self.0.ask(|r| Command::Apply(ops, r)).await
    }

    async fn clear(&self, table: &str) -> Result<()> {
        self.0.ask(|r| Command::Clear(table.to_owned(), r)).await
    }

    async fn commit(self) -> Result<()> {
        self.0.ask(Command::Commit).await
    }

    async fn commit_around(self, at_commit: AtCommit) -> Result<ChangeSet> {
        self.0.ask(|r| Command::CommitAround(at_commit, r)).await
    }
}

/// The pool of threads that run transactions.
mod pool {
    use std::sync::Mutex;
    use std::sync::mpsc;

    /// A transaction's whole life on a thread.
    pub(super) type Job = Box<dyn FnOnce() + Send>;

    /// Idle threads kept for the next transactions.
    const KEEP: usize = 8;

    static IDLE: Mutex<Vec<mpsc::Sender<Job>>> = Mutex::new(Vec::new());

    fn take_idle() -> Option<mpsc::Sender<Job>> {
        IDLE.lock().ok()?.pop()
    }

    /// Runs `job` on an idle thread, or on a new one.
    pub(super) fn run(mut job: Job) {
        while let Some(worker) = take_idle() {
            match worker.send(job) {
                Ok(()) => return,
                // That thread has exited: try the next.
                Err(mpsc::SendError(back)) => job = back,
            }
        }
        std::thread::Builder::new()
            .name("netabase-txn".into())
            .spawn(move || work(job))
            // Without a thread the job is dropped: its transaction's caller sees the
            // thread as gone and gets an error.
            .map(drop)
            .unwrap_or_default();
    }

    fn work(mut job: Job) {
        loop {
            job();
            let (sender, receiver) = mpsc::channel();
            match IDLE.lock() {
                Ok(mut idle) if idle.len() < KEEP => idle.push(sender),
                _ => return,
            }
            match receiver.recv() {
                Ok(next) => job = next,
                Err(_) => return,
            }
        }
    }
}
