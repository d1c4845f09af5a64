//! Two stores that were apart (a laptop and a phone) diverge, then reconcile: each
//! receives only what it lacks, and both end up identical.
//!
//! Run it with `cargo run --example sync`.

use netabase_store::backend::memory::MemoryBackend;
use netabase_store::prelude::*;
use netabase_store::sync::{self, Reconciler, SyncedTree};
use netabase_store::{NetabaseStore, OpenOptions};

/// The schema.
#[netabase_definition_module(NotesDefinition, NotesKeys)]
pub mod notes {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    /// A note, found by id or by folder.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(NotesDefinition)]
    pub struct Note {
        /// Unique id.
        #[primary_key]
        pub id: u64,
        /// The text.
        pub text: String,
        /// The folder it is filed in.
        #[secondary_key]
        pub folder: String,
    }
}

use notes::*;

type Store = NetabaseStore<NotesDefinition, MemoryBackend>;

fn open() -> NetabaseResult<Store> {
    NetabaseStore::from_backend_with(MemoryBackend::new(), OpenOptions::default().sync_all())
}

fn note(id: u64, text: &str, folder: &str) -> Note {
    Note {
        id,
        text: text.into(),
        folder: folder.into(),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (laptop, phone) = (open()?, open()?);

    // A shared history: 10,000 notes written on the laptop, copied to the phone.
    laptop
        .open_tree::<Note>()
        .put_many((0..10_000).map(|i| note(i, &format!("note {i}"), "inbox")))?;
    let first = sync::reconcile(&laptop, &phone)?;
    println!("first sync (the whole store): {first}");

    // Apart, each side writes a little.
    let (on_laptop, on_phone) = (laptop.open_tree::<Note>(), phone.open_tree::<Note>());
    on_laptop.put(note(7, "edited on the laptop", "work"))?;
    on_laptop.remove(42)?;
    on_phone.put(note(10_000, "written on the phone", "ideas"))?;
    on_phone.put(note(99, "edited on the phone", "inbox"))?;
    println!(
        "apart: laptop {} notes, phone {} notes",
        on_laptop.len()?,
        on_phone.len()?
    );

    // Reconcile, message by message, as two peers would over any transport.
    let (mut left, mut right) = (Reconciler::new(&laptop)?, Reconciler::new(&phone)?);
    let mut message = Some(left.initiate()?);
    let mut towards_phone = true;
    while let Some(bytes) = message {
        let (from, to) = if towards_phone {
            ("laptop", "phone")
        } else {
            ("phone", "laptop")
        };
        let shown = sync::Message::from_bytes(&bytes)?;
        let records: usize = shown.models.iter().map(|m| m.records.len()).sum();
        let ranges: usize = shown.models.iter().map(|m| m.ranges.len()).sum();
        println!(
            "  {from} -> {to}: {} bytes, {ranges} ranges, {records} records",
            bytes.len()
        );
        message = if towards_phone {
            right.respond(&bytes)?
        } else {
            left.respond(&bytes)?
        };
        towards_phone = !towards_phone;
    }
    let (l, r) = (left.stats(), right.stats());
    println!(
        "moved: {} records laptop -> phone, {} phone -> laptop; {} bytes in all \
         (the whole store is {} bytes)",
        l.records_sent,
        r.records_sent,
        l.bytes_sent + r.bytes_sent,
        sync::full_transfer_bytes(&laptop)?
    );

    // Both hold the same notes now, the removal included, and the same fingerprints.
    for id in [7, 42, 99, 10_000] {
        let (a, b) = (on_laptop.get(id)?, on_phone.get(id)?);
        assert_eq!(a, b);
        println!("note {id}: {}", a.map_or("(removed)".into(), |n| n.text));
    }
    assert_eq!(
        on_laptop.fingerprint::<u64>(..)?,
        on_phone.fingerprint::<u64>(..)?
    );
    assert_eq!(
        on_phone.get_by_secondary_key(NoteFolderSecondaryKey("work".into()))?,
        vec![note(7, "edited on the laptop", "work")]
    );
    println!("both stores hold {} notes", on_phone.len()?);
    Ok(())
}
