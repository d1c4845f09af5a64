//! A notebook shared by three replicas, one of which goes offline for a while.
//!
//! ```text
//! cargo run -p netabase --example shared_notes
//! ```
//!
//! Alice, Bob and Carol run a node each (in this one process, each on its own redb
//! file) and replicate the whole notes definition (`NetabaseConfig::replicate_all`):
//!
//! 1. Alice writes a note; Bob and Carol receive it as a live update and see it in
//!    `watch`.
//! 2. Carol goes offline (her node is closed). Alice edits a note meanwhile.
//! 3. Carol's node is reopened on the same database file, alone: she writes a note and
//!    edits one while nobody can hear her.
//! 4. She reconnects: her node reconciles with Alice's and Bob's
//!    (`/netabase/sync/1.0.0`), exchanging only what differs, and all three hold the
//!    same notes, the newest version of each (by its stamp) on every node.
//!
//! Every wait is on an event, bounded by a timeout; the program exits 0 once the three
//! notebooks are identical.

use std::path::Path;
use std::time::Duration;

use netabase::libp2p::{Multiaddr, PeerId};
use netabase::{Error, Netabase, NetabaseConfig, NetabaseEvent, SyncRole};
use netabase_store::prelude::*;
use netabase_store::watch::{Event, Filter};
use tokio::sync::broadcast;

/// The schema of the example: notes.
#[netabase_definition_module(NotesDefinition, NotesKeys)]
pub mod notes {
    use netabase_store::prelude::*;
    use serde::{Deserialize, Serialize};

    /// A short note.
    #[derive(NetabaseModel, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[netabase(NotesDefinition)]
    pub struct Note {
        /// Its number.
        #[primary_key]
        pub id: u64,
        /// Who wrote it last.
        #[secondary_key]
        pub author: String,
        /// What it says.
        pub text: String,
    }
}

use notes::*;

type Node = Netabase<NotesDefinition>;
type AnyError = Box<dyn std::error::Error + Send + Sync>;

/// How long any one step may take before the example gives up.
const STEP: Duration = Duration::from_secs(20);

fn note(id: u64, author: &str, text: &str) -> Note {
    Note {
        id,
        author: author.to_owned(),
        text: text.to_owned(),
    }
}

fn config(path: &Path) -> NetabaseConfig {
    NetabaseConfig::loopback()
        .with_storage_path(path)
        .replicate_all()
        // Catch-up on (re)connection only, to show it.
        .with_sync_interval(None)
}

async fn address_of(node: &Node) -> Result<Multiaddr, AnyError> {
    Ok(node
        .listen_addrs()
        .await?
        .into_iter()
        .next()
        .ok_or("the node has no listen address")?)
}

/// Waits (at most [`STEP`]) for the first event `pick` accepts.
async fn wait_for<T>(
    events: &mut broadcast::Receiver<NetabaseEvent>,
    what: &str,
    mut pick: impl FnMut(&NetabaseEvent) -> Option<T>,
) -> Result<T, AnyError> {
    let found = tokio::time::timeout(STEP, async {
        loop {
            match events.recv().await {
                Ok(event) => {
                    if let Some(found) = pick(&event) {
                        return Ok(found);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => return Err(e),
            }
        }
    })
    .await;
    match found {
        Ok(Ok(found)) => Ok(found),
        Ok(Err(e)) => Err(format!("waiting for {what}: {e}").into()),
        Err(_) => Err(format!("timed out waiting for {what}").into()),
    }
}

/// A write made while some replicas are away: kept locally, reaching fewer peers than
/// asked for is expected.
async fn write(node: &Node, who: &str, note: Note) -> Result<(), AnyError> {
    println!("{who} writes note {}: {:?}", note.id, note.text);
    match node.put_record(note).await {
        Ok(_) | Err(Error::QuorumFailed { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The notes `node` holds, in key order.
fn notebook(node: &Node) -> Result<Vec<Note>, AnyError> {
    let view = node.view();
    let txn = view.read()?;
    let mut notes = Vec::new();
    for id in 1..=4u64 {
        if let Some(note) = txn.open_tree::<Note>().get(NotePrimaryKey(id))? {
            notes.push(note);
        }
    }
    Ok(notes)
}

fn show(who: &str, node: &Node) -> Result<Vec<Note>, AnyError> {
    let notes = notebook(node)?;
    println!("  {who} holds:");
    for n in &notes {
        println!("    #{} by {}: {}", n.id, n.author, n.text);
    }
    Ok(notes)
}

/// Connects `node` to `peer` and waits for the catch-up session it starts.
async fn reconnect(
    node: &Node,
    who: &str,
    peer: PeerId,
    address: Multiaddr,
) -> Result<(), AnyError> {
    let mut events = node.subscribe_to_broadcasts();
    node.add_address(peer, address).await?;
    let (sent, received, applied) = wait_for(&mut events, "a catch-up session", |e| match e {
        NetabaseEvent::Synced {
            peer: p,
            role: SyncRole::Initiator,
            bytes_sent,
            bytes_received,
            records_applied,
            ..
        } if *p == peer => Some(Ok((*bytes_sent, *bytes_received, *records_applied))),
        NetabaseEvent::SyncFailed { peer: p, reason } if *p == peer => Some(Err(reason.clone())),
        _ => None,
    })
    .await??;
    println!(
        "{who} caught up with {peer}: {applied} record(s) applied here, \
         {sent} bytes sent, {received} bytes received"
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), AnyError> {
    let dir = tempfile::tempdir()?;
    let paths: Vec<_> = ["alice", "bob", "carol"]
        .iter()
        .map(|name| dir.path().join(format!("{name}.redb")))
        .collect();
    let alice = Node::new(config(&paths[0])).await?;
    let bob = Node::new(config(&paths[1])).await?;
    let carol = Node::new(config(&paths[2])).await?;
    println!("alice, bob and carol replicate the notes definition");

    // Bob and Carol join Alice (and each other); each waits until the other two
    // replicas joined its live updates.
    let mut joined = Vec::new();
    for node in [&alice, &bob, &carol] {
        joined.push(node.subscribe_to_broadcasts());
    }
    bob.add_address(alice.peer_id(), address_of(&alice).await?)
        .await?;
    carol
        .add_address(alice.peer_id(), address_of(&alice).await?)
        .await?;
    carol
        .add_address(bob.peer_id(), address_of(&bob).await?)
        .await?;
    for events in &mut joined {
        let mut peers = std::collections::HashSet::new();
        wait_for(events, "the other replicas", |e| match e {
            NetabaseEvent::ReplicaJoined { peer } => {
                peers.insert(*peer);
                (peers.len() == 2).then_some(())
            }
            _ => None,
        })
        .await?;
    }

    // 1. A live update.
    let carol_watch = carol
        .view()
        .watch()
        .model::<Note>(Filter::all())
        .subscribe();
    write(&alice, "alice", note(1, "alice", "buy milk")).await?;
    write(&alice, "alice", note(2, "alice", "call bob")).await?;
    // The watch is a blocking subscription: waited on off the runtime.
    let seen = tokio::task::spawn_blocking(move || {
        let mut seen = 0;
        while seen < 2 {
            match carol_watch.recv_timeout(STEP) {
                Ok(Some(Event::Commit(commit))) => seen += commit.changes.len(),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        seen
    })
    .await?;
    if seen < 2 {
        return Err("timed out waiting for carol's watch".into());
    }
    println!("carol saw alice's two notes arrive in `watch`");

    // 2. Carol goes offline; Alice edits note 1 meanwhile.
    let carol_id = carol.peer_id();
    carol.close().await;
    drop(carol);
    for node in [&alice, &bob] {
        node.disconnect(carol_id).await?;
    }
    println!("carol goes offline");
    write(&alice, "alice", note(1, "alice", "buy oat milk")).await?;

    // 3. Carol's node is reopened on her database, alone, and she writes.
    let carol = Node::new(config(&paths[2])).await?;
    println!(
        "carol is back on her own database ({}), still apart",
        carol.peer_id()
    );
    write(&carol, "carol", note(3, "carol", "book the venue")).await?;
    write(&carol, "carol", note(2, "carol", "call bob tonight")).await?;
    show("alice", &alice)?;
    show("carol", &carol)?;

    // 4. She reconnects: catch-up with each replica.
    reconnect(&carol, "carol", alice.peer_id(), address_of(&alice).await?).await?;
    reconnect(&carol, "carol", bob.peer_id(), address_of(&bob).await?).await?;

    println!("after the catch-up:");
    let a = show("alice", &alice)?;
    let b = show("bob", &bob)?;
    let c = show("carol", &carol)?;
    let converged = a == b && b == c && a.len() == 3;
    for node in [&alice, &bob, &carol] {
        node.close().await;
    }
    if !converged {
        return Err("the three notebooks differ".into());
    }
    println!("the three notebooks are identical");
    Ok(())
}
