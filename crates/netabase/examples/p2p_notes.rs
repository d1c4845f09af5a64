//! Notes shared over a netabase DHT.
//!
//! ```text
//! cargo run -p netabase --example p2p_notes              # 3 nodes in this process
//! cargo run -p netabase --example p2p_notes -- serve     # one node; prints its address
//! cargo run -p netabase --example p2p_notes -- join ADDR # another terminal: join it
//! ```
//!
//! `ADDR` is the `/ip4/.../tcp/.../p2p/...` address printed by `serve`.
//!
//! In the two-terminal mode both nodes replicate the notes
//! (`NetabaseConfig::replicate_all`): `serve` writes notes 1..3 and waits; `join`
//! connects to it, catches up on those notes by reconciliation (they land in its own
//! typed store, not only in the DHT), prints them from its local view, and writes
//! note 4, which the server receives as a live update and prints from its view.

use std::time::Duration;

use netabase::libp2p::Multiaddr;
use netabase::libp2p::multiaddr::Protocol;
use netabase::{Netabase, NetabaseConfig, NetabaseEvent, SyncRole};
use netabase_store::prelude::*;

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
        /// Who wrote it.
        #[secondary_key]
        pub author: String,
        /// What it says.
        pub text: String,
    }
}

use notes::*;

type Node = Netabase<NotesDefinition>;
type AnyError = Box<dyn std::error::Error + Send + Sync>;

fn note(id: u64, author: &str, text: &str) -> Note {
    Note {
        id,
        author: author.to_owned(),
        text: text.to_owned(),
    }
}

async fn address_of(node: &Node) -> Result<Multiaddr, AnyError> {
    let addr = node
        .listen_addrs()
        .await?
        .into_iter()
        .next()
        .ok_or("the node has no listen address")?;
    Ok(addr.with(Protocol::P2p(node.peer_id())))
}

/// Prints the node's record events as they happen.
fn narrate(name: &'static str, node: &Node) {
    let mut events = node.subscribe_to_broadcasts();
    tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            match event {
                NetabaseEvent::RecordStored { source, .. } => {
                    println!("  [{name}] stored a record sent by {source}");
                }
                NetabaseEvent::RecordRefused { kind, reason, .. } => {
                    println!("  [{name}] refused a record ({kind:?}): {reason}");
                }
                NetabaseEvent::PeerConnected { peer, .. } => {
                    println!("  [{name}] connected to {peer}");
                }
                _ => {}
            }
        }
    });
}

async fn demo() -> Result<(), AnyError> {
    println!("starting three nodes on 127.0.0.1 ...");
    let mut nodes = Vec::new();
    for name in ["alice", "bob", "carol"] {
        let node = Node::new(NetabaseConfig::loopback()).await?;
        println!("{name}: {}", address_of(&node).await?);
        narrate(name, &node);
        nodes.push(node);
    }
    let (alice, carol) = (&nodes[0], &nodes[2]);
    for node in &nodes[1..] {
        node.add_address(alice.peer_id(), address_of(alice).await?)
            .await?;
        node.bootstrap().await?;
    }

    for (id, text) in [(1, "buy milk"), (2, "call bob"), (3, "ship netabase")] {
        let outcome = alice.put_record(note(id, "alice", text)).await?;
        println!(
            "alice published note {id}, stored on {} peer(s)",
            outcome.stored_on
        );
    }
    for id in 1..=3 {
        let found: Option<Note> = carol.get_record(NotePrimaryKey(id)).await?;
        println!("carol read note {id}: {found:?}");
    }
    alice.start_providing::<Note>(NotePrimaryKey(1)).await?;
    let providers = carol.get_providers::<Note>(NotePrimaryKey(1)).await?;
    println!("providers of note 1 seen by carol: {providers:?}");
    // The application reads the node's data through a read-only view: its snapshots
    // never hold the database's writer lock, so they cannot stall the node.
    let view = alice.view();
    let by_alice =
        view.read()?
            .open_tree::<Note>()
            .get_by_secondary_key(NoteSecondaryKeys::Author(NoteAuthorSecondaryKey(
                "alice".into(),
            )))?;
    println!("alice's local store holds {} of her notes", by_alice.len());

    for node in &nodes {
        node.close().await;
    }
    Ok(())
}

/// The configuration of the two-terminal mode: the nodes replicate every note.
fn replicating() -> NetabaseConfig {
    NetabaseConfig::loopback().replicate_all()
}

/// The notes `node` holds in its own typed store.
fn local_notes(node: &Node) -> Result<Vec<Note>, AnyError> {
    let view = node.view();
    let txn = view.read()?;
    let tree = txn.open_tree::<Note>();
    let mut notes = Vec::new();
    for id in 1..=4 {
        notes.extend(tree.get(NotePrimaryKey(id))?);
    }
    Ok(notes)
}

async fn serve() -> Result<(), AnyError> {
    let node = Node::new(replicating()).await?;
    narrate("server", &node);
    for (id, text) in [(1, "hello"), (2, "from"), (3, "the server")] {
        // Alone on the network the put reaches no peer; the node keeps and serves it.
        let _ = node.put_record(note(id, "server", text)).await;
    }
    println!("serving notes 1..3; in another terminal run:");
    println!(
        "  cargo run -p netabase --example p2p_notes -- join {}",
        address_of(&node).await?
    );
    println!("press Ctrl-C to stop");
    let mut events = node.subscribe_to_broadcasts();
    loop {
        tokio::select! {
            stop = tokio::signal::ctrl_c() => {
                stop?;
                break;
            }
            event = events.recv() => {
                if let Ok(NetabaseEvent::RecordStored { .. }) = event {
                    println!("the server's own store now holds: {:?}", local_notes(&node)?);
                }
            }
        }
    }
    node.close().await;
    Ok(())
}

async fn join(address: &str) -> Result<(), AnyError> {
    let address: Multiaddr = address.parse()?;
    let Some(Protocol::P2p(peer)) = address.iter().last() else {
        return Err("the address must end with /p2p/<peer id>".into());
    };
    let node = Node::new(replicating()).await?;
    narrate("joiner", &node);
    let mut events = node.subscribe_to_broadcasts();
    node.add_address(peer, address).await?;
    // Connecting starts a catch-up session with the server: wait for it (bounded).
    let synced = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match events.recv().await {
                Ok(NetabaseEvent::Synced {
                    role: SyncRole::Initiator,
                    records_applied,
                    bytes_sent,
                    bytes_received,
                    ..
                }) => {
                    return Ok((records_applied, bytes_sent + bytes_received));
                }
                Ok(NetabaseEvent::SyncFailed { reason, .. }) => return Err(reason),
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await
    .map_err(|_| "timed out waiting for the catch-up")??;
    println!(
        "caught up with the server: {} record(s) applied, {} bytes exchanged",
        synced.0, synced.1
    );
    for note in local_notes(&node)? {
        println!("held locally: note {}: {:?}", note.id, note.text);
    }
    node.bootstrap().await?;
    let outcome = node.put_record(note(4, "joiner", "hi server")).await?;
    println!("published note 4, stored on {} peer(s)", outcome.stored_on);
    // Let the server log the record before this node goes away.
    tokio::time::sleep(Duration::from_millis(200)).await;
    node.close().await;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), AnyError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] | ["demo"] => demo().await,
        ["serve"] => serve().await,
        ["join", address] => join(address).await,
        _ => Err("usage: p2p_notes [demo | serve | join ADDR]".into()),
    }
}
