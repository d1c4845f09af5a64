//! The verifier pool: the threads that verify the signatures of a large batch of
//! inbound records beside the thread that hands it over.
//!
//! A worker starts its helpers once, with its other threads, and keeps them until it
//! stops: a batch is split into parts, each part is sent to a helper over that helper's
//! own channel with a channel for the answer, the last part is verified on the calling
//! thread meanwhile, and the answers are put back together in the order of the batch.
//! Starting threads per batch cost more than verifying a small part.
//!
//! Verification does not panic; if it ever did, the records of the part that panicked
//! are refused (with the panic's message, and logged), never stored unverified, and the
//! helper goes on serving the next part. Dropping the pool closes the helpers' channels
//! and joins every helper.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::thread::JoinHandle;

use libp2p::PeerId;
use netabase_store::kad::{SignedRecord, SignedRecordError, UnverifiedRecord};

/// A record to verify, with the peer it came from (if known).
pub(crate) type Unverified = (UnverifiedRecord, Option<PeerId>);

/// A verified record, or why its signature was refused.
pub(crate) type Checked = Result<SignedRecord, SignedRecordError>;

/// What verifies one part: [`netabase_store::kad::verify_batch`] (one answer per
/// record, in order).
pub(crate) type VerifyFn = fn(Vec<Unverified>) -> Vec<Checked>;

/// Records per thread below which a batch is not split further: handing a part to a
/// helper and waiting for its answer would cost more than verifying it here.
pub(crate) const MIN_VERIFY_PER_THREAD: usize = 16;

/// A part of a batch, sent to a helper with the channel for its answer.
struct Part {
    records: Vec<Unverified>,
    answer: mpsc::SyncSender<Vec<Checked>>,
}

/// One helper thread and its channel.
struct Helper {
    jobs: mpsc::Sender<Part>,
    thread: JoinHandle<()>,
}

/// The helper threads of a worker; the thread that calls [`Verifiers::verify`] is one
/// more verifying thread.
pub(crate) struct Verifiers {
    helpers: Vec<Helper>,
    verify: VerifyFn,
}

/// A part of the batch being verified, in the batch's order.
enum Pending {
    /// Sent to a helper: `len` records, answered on the receiver.
    Sent(usize, mpsc::Receiver<Vec<Checked>>),
    /// No helper took it: verified on the calling thread after its own part.
    Here(Vec<Unverified>),
}

impl Verifiers {
    /// Starts `helpers` threads that verify parts with `verify`.
    ///
    /// # Errors
    /// The error of the operating system if a thread cannot start (the helpers already
    /// started are stopped and joined).
    pub(crate) fn start(helpers: usize, verify: VerifyFn) -> std::io::Result<Self> {
        let mut pool = Verifiers {
            helpers: Vec::with_capacity(helpers),
            verify,
        };
        for index in 0..helpers {
            let (jobs, parts) = mpsc::channel::<Part>();
            let thread = std::thread::Builder::new()
                .name(format!("netabase-verify-{}", index + 1))
                .spawn(move || {
                    // Ends when the pool drops its sender.
                    for Part { records, answer } in parts {
                        let _ = answer.send(guarded(verify, records));
                    }
                })?;
            pool.helpers.push(Helper { jobs, thread });
        }
        Ok(pool)
    }

    /// How many threads verify a large batch: the helpers and the calling thread.
    pub(crate) fn threads(&self) -> usize {
        self.helpers.len() + 1
    }

    /// Verifies `records` (one answer per record, in order): a batch of at least twice
    /// [`MIN_VERIFY_PER_THREAD`] records is split into up to [`Verifiers::threads`]
    /// parts of equal size, the last verified on this thread while the helpers verify
    /// the others.
    pub(crate) fn verify(&self, mut records: Vec<Unverified>) -> Vec<Checked> {
        let total = records.len();
        let threads = self.threads().min(total / MIN_VERIFY_PER_THREAD).max(1);
        let per_thread = total.div_ceil(threads);
        let mut pending = Vec::with_capacity(threads - 1);
        for helper in &self.helpers {
            if records.len() <= per_thread {
                break;
            }
            let rest = records.split_off(per_thread);
            let part = std::mem::replace(&mut records, rest);
            let len = part.len();
            let (answer, answered) = mpsc::sync_channel(1);
            match helper.jobs.send(Part {
                records: part,
                answer,
            }) {
                Ok(()) => pending.push(Pending::Sent(len, answered)),
                // The helper has stopped (it cannot, short of an abort): verify its part
                // here rather than lose it.
                Err(mpsc::SendError(part)) => pending.push(Pending::Here(part.records)),
            }
        }
        let last = guarded(self.verify, records);
        let mut checked = Vec::with_capacity(total);
        for part in pending {
            match part {
                Pending::Sent(len, answered) => match answered.recv() {
                    Ok(part) => checked.extend(part),
                    Err(_) => {
                        tracing::error!(records = len, "a signature verifier stopped mid-part");
                        checked.extend(refused(len, "the verifying thread stopped"));
                    }
                },
                Pending::Here(part) => checked.extend(guarded(self.verify, part)),
            }
        }
        checked.extend(last);
        checked
    }
}

impl Drop for Verifiers {
    /// Closes every helper's channel, then joins them all: each finishes the part it
    /// holds (nobody waits for it any more) and stops.
    fn drop(&mut self) {
        let threads: Vec<JoinHandle<()>> = self
            .helpers
            .drain(..)
            .map(|Helper { jobs, thread }| {
                drop(jobs);
                thread
            })
            .collect();
        for thread in threads {
            if thread.join().is_err() {
                tracing::error!("a signature verifier thread panicked");
            }
        }
    }
}

/// Runs `verify` on `records`, turning a panic (or an answer of the wrong length, which
/// would pair outcomes with the wrong records) into a refusal of every record of the
/// part, so that each record still gets exactly one answer.
fn guarded(verify: VerifyFn, records: Vec<Unverified>) -> Vec<Checked> {
    let len = records.len();
    match catch_unwind(AssertUnwindSafe(|| verify(records))) {
        Ok(checked) if checked.len() == len => checked,
        Ok(checked) => {
            tracing::error!(
                records = len,
                answers = checked.len(),
                "a signature verifier answered the wrong number of records"
            );
            refused(len, "the verifier answered the wrong number of records")
        }
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_owned());
            tracing::error!(records = len, %message, "a signature verifier panicked");
            refused(len, &format!("the verifier panicked: {message}"))
        }
    }
}

/// `len` refusals for a part that could not be verified.
fn refused(len: usize, reason: &str) -> Vec<Checked> {
    (0..len)
        .map(|_| {
            Err(SignedRecordError::BadSignature {
                reason: reason.to_owned(),
            })
        })
        .collect()
}
