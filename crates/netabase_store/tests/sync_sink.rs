//! Reconciliation with a record sink: the received records are handed to the sink
//! instead of being written by the reconciler; what the sink applies and refuses is
//! what the statistics report.

use std::cell::RefCell;

use netabase_store::backend::memory::MemoryBackend;
use netabase_store::prelude::*;
use netabase_store::sync::{
    Reconciler, RecordSink, SinkReport, SyncRecord, SyncRefusal, SyncedTree,
};
use netabase_store::{NetabaseStore, OpenOptions};

/// The schema of these tests.
#[netabase_definition_module(SinkDefinition, SinkKeys)]
pub mod models {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(SinkDefinition)]
    /// A synced model.
    pub struct Note {
        /// Primary key.
        #[primary_key]
        pub id: u32,
        /// Text.
        pub text: String,
    }
}

use models::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;
type Store = NetabaseStore<SinkDefinition, MemoryBackend>;

fn open() -> Result<Store, NetabaseError> {
    NetabaseStore::from_backend_with(MemoryBackend::new(), OpenOptions::default().sync_all())
}

/// Keeps what it is given; refuses the records whose key is odd, "applies" the rest.
#[derive(Default)]
struct Collect {
    received: RefCell<Vec<(&'static str, SyncRecord)>>,
}

impl RecordSink for Collect {
    fn apply(
        &self,
        received: Vec<(&'static str, Vec<SyncRecord>)>,
    ) -> Result<SinkReport, NetabaseError> {
        let mut report = SinkReport::default();
        for (model, records) in received {
            for rec in records {
                let odd = u32::from_key_bytes(&rec.key).is_ok_and(|id| id % 2 == 1);
                if odd {
                    report.refusals.push(SyncRefusal::new(
                        model,
                        rec.key.clone(),
                        rec.stamp,
                        "odd".into(),
                    ));
                } else {
                    report.applied += 1;
                }
                self.received.borrow_mut().push((model, rec));
            }
        }
        Ok(report)
    }
}

#[test]
fn received_records_go_to_the_sink_not_to_the_store() -> TestResult {
    let (a, b) = (open()?, open()?);
    for id in 0..10 {
        a.open_tree::<Note>().put(Note {
            id,
            text: format!("note {id}"),
        })?;
    }
    let sink = Collect::default();
    let mut left = Reconciler::new(&a)?;
    let mut right = Reconciler::new(&b)?.with_sink(&sink);
    let mut message = Some(left.initiate()?);
    let mut to_right = true;
    while let Some(bytes) = message {
        message = if to_right {
            right.respond(&bytes)?
        } else {
            left.respond(&bytes)?
        };
        to_right = !to_right;
    }
    // Every record reached the sink, with the sender's stamp; none was written.
    let received = sink.received.borrow();
    assert_eq!(received.len(), 10);
    for (model, rec) in received.iter() {
        assert_eq!(*model, "Note");
        let id = u32::from_key_bytes(&rec.key)?;
        let held = a.open_tree::<Note>().version(id)?.ok_or("not held")?;
        assert_eq!(rec.stamp, held.stamp);
        assert!(rec.value.is_some());
    }
    assert_eq!(b.open_tree::<Note>().len()?, 0);
    let stats = right.stats();
    assert_eq!(stats.records_received, 10);
    assert_eq!(stats.records_applied, 5);
    assert_eq!(stats.records_refused, 5);
    assert!(stats.refusals.iter().all(|r| r.reason == "odd"));
    Ok(())
}
