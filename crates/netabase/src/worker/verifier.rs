//! The verifier pool: the threads that verify the signatures of a large batch of
//! inbound records beside the thread that hands it over.
//!
//! A worker starts its helpers once, with its other threads, and keeps them until it
//! stops: a batch is split into parts, each part is sent to a helper over that helper's
//! own channel with a channel for the answer, the last part is verified on the calling
//! thread meanwhile, and the answers are put back together in the order of the batch.
//! Sending a part costs a channel message, where starting a thread for it cost a thread
//! start and join for every batch.
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

/// Records per thread below which a batch is not split further: a small batch stays on
/// the thread that has it (a part of a few records would gain less from a second core
/// than the hand-over and the wake-up of a helper cost).
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

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use libp2p::identity::Keypair;
    use libp2p::kad::{Record, RecordKey};
    use netabase_store::kad::{
        Envelope, RecordSigner, SignedRecord, SignedRecordError, VERIFY_CHUNK, verify_batch,
    };

    use super::*;

    type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Kind {
        Valid,
        BadlySigned,
        Stolen,
    }

    fn key(index: usize) -> RecordKey {
        RecordKey::new(&format!("record {index}"))
    }

    /// A batch of records signed by one author, each made bad as `kinds` says: a
    /// damaged signature, or re-signed by another peer in the author's name.
    fn batch(kinds: &[Kind]) -> TestResult<Vec<Unverified>> {
        let author = RecordSigner::new(&Keypair::generate_ed25519())?;
        let thief = Keypair::generate_ed25519();
        let mut records = Vec::with_capacity(kinds.len());
        for (index, kind) in kinds.iter().enumerate() {
            let sealed = author
                .seal(key(index), Some(vec![7; 64]), author.next_stamp(None))
                .to_record();
            let mut envelope = Envelope::decode(&sealed.value)?;
            let record = match kind {
                Kind::Valid => sealed,
                Kind::BadlySigned => {
                    if let Some(byte) = envelope.signature.first_mut() {
                        *byte ^= 0x55;
                    }
                    Record::new(key(index), envelope.encode())
                }
                Kind::Stolen => {
                    envelope.signature = thief.sign(&envelope.signing_bytes(&key(index)))?;
                    let mut forged = Record::new(key(index), envelope.encode());
                    forged.publisher = Some(thief.public().to_peer_id());
                    forged
                }
            };
            records.push((SignedRecord::decode_unverified(&record)?, None));
        }
        Ok(records)
    }

    /// The threads that verified a part for `a_split_batch_refuses_exactly_its_bad_records`.
    static SPLIT_THREADS: Mutex<Vec<String>> = Mutex::new(Vec::new());

    fn verify_noting_thread(records: Vec<Unverified>) -> Vec<Checked> {
        let name = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_owned();
        if let Ok(mut threads) = SPLIT_THREADS.lock() {
            threads.push(name);
        }
        verify_batch(records)
    }

    /// A batch split over four threads, with bad records first, last, on both sides of
    /// every boundary between parts and in the middle of parts, has exactly its bad
    /// records refused, each for its own reason, and every good one verified.
    #[test]
    fn a_split_batch_refuses_exactly_its_bad_records() -> TestResult {
        let pool = Verifiers::start(3, verify_noting_thread)?;
        assert_eq!(pool.threads(), 4);
        // 265 records: parts of 67, 67, 67 and 64.
        let len = 4 * VERIFY_CHUNK + 9;
        let mut kinds = vec![Kind::Valid; len];
        for bad in [0, 30, 66, 67, 133, 134, 200, 201, 264] {
            kinds[bad] = Kind::BadlySigned;
        }
        for stolen in [5, 100, 150, 230] {
            kinds[stolen] = Kind::Stolen;
        }
        let checked = pool.verify(batch(&kinds)?);
        assert_eq!(checked.len(), len);
        for (index, (kind, checked)) in kinds.iter().zip(&checked).enumerate() {
            match (kind, checked) {
                (Kind::Valid, Ok(signed)) => assert_eq!(signed.key(), &key(index)),
                (Kind::BadlySigned, Err(SignedRecordError::BadSignature { .. }))
                | (Kind::Stolen, Err(SignedRecordError::StolenAuthorship { .. })) => {}
                (kind, outcome) => panic!("record {index}, {kind:?}: {outcome:?}"),
            }
        }
        // It was split: the three helpers and this thread each verified a part.
        let threads: HashSet<String> = SPLIT_THREADS
            .lock()
            .map_err(|_| "poisoned")?
            .iter()
            .cloned()
            .collect();
        assert_eq!(threads.len(), 4, "{threads:?}");
        Ok(())
    }

    /// A small batch is not split: it is verified on the calling thread.
    #[test]
    fn a_small_batch_is_verified_in_one_part() -> TestResult {
        let pool = Verifiers::start(3, verify_batch)?;
        let kinds = [Kind::Valid, Kind::BadlySigned, Kind::Valid];
        let checked = pool.verify(batch(&kinds)?);
        assert!(matches!(
            checked.as_slice(),
            [Ok(_), Err(SignedRecordError::BadSignature { .. }), Ok(_)]
        ));
        assert!(pool.verify(Vec::new()).is_empty());
        Ok(())
    }

    /// Verifies, but panics on a part that holds the record keyed "record 3".
    fn panicking_on_some(records: Vec<Unverified>) -> Vec<Checked> {
        if records.iter().any(|(record, _)| record.key() == &key(3)) {
            panic!("a verifier bug");
        }
        verify_batch(records)
    }

    fn panicked(checked: &Checked) -> bool {
        matches!(checked, Err(SignedRecordError::BadSignature { reason }) if reason.contains("a verifier bug"))
    }

    /// A verifier that panics, on a helper or on the calling thread, has the records
    /// of its part refused with the panic's message (one answer per record, none
    /// stored unverified), and the helper goes on verifying the next batches.
    #[test]
    fn a_panicking_verifier_refuses_its_part_and_the_pool_goes_on() -> TestResult {
        let pool = Verifiers::start(1, panicking_on_some)?;
        // 64 records: records 0–31 go to the helper, 32–63 stay on this thread.
        let kinds = vec![Kind::Valid; 64];
        let checked = pool.verify(batch(&kinds)?);
        assert_eq!(checked.len(), 64);
        assert!(checked[..32].iter().all(panicked), "{:?}", &checked[..32]);
        assert!(checked[32..].iter().all(Result::is_ok));
        // Record 3 moved to the end, into the calling thread's part: that part is
        // refused, the helper's is verified.
        let mut records = batch(&kinds)?;
        let moved = records.remove(3);
        records.push(moved);
        let checked = pool.verify(records);
        assert_eq!(checked.len(), 64);
        assert!(checked[..32].iter().all(Result::is_ok));
        assert!(checked[32..].iter().all(panicked), "{:?}", &checked[32..]);
        Ok(())
    }

    /// The helpers that have run a part (thread-local state set) for
    /// `dropping_the_pool_joins_every_helper`, and those whose thread has ended.
    static STARTED: AtomicUsize = AtomicUsize::new(0);
    static ENDED: AtomicUsize = AtomicUsize::new(0);

    struct EndsWithThread;

    impl Drop for EndsWithThread {
        fn drop(&mut self) {
            ENDED.fetch_add(1, Ordering::SeqCst);
        }
    }

    thread_local! {
        static ON_THIS_THREAD: EndsWithThread = const { EndsWithThread };
    }

    fn verify_marking_thread(records: Vec<Unverified>) -> Vec<Checked> {
        if std::thread::current()
            .name()
            .is_some_and(|name| name.starts_with("netabase-verify-"))
        {
            ON_THIS_THREAD.with(|_| {
                STARTED.fetch_add(1, Ordering::SeqCst);
            });
        }
        verify_batch(records)
    }

    /// Dropping the pool joins every helper: each helper's thread has ended when the
    /// drop returns.
    #[test]
    fn dropping_the_pool_joins_every_helper() -> TestResult {
        let pool = Verifiers::start(2, verify_marking_thread)?;
        let checked = pool.verify(batch(&[Kind::Valid; 48])?);
        assert!(checked.iter().all(Result::is_ok));
        assert_eq!(STARTED.load(Ordering::SeqCst), 2);
        drop(pool);
        assert_eq!(ENDED.load(Ordering::SeqCst), 2);
        Ok(())
    }
}
