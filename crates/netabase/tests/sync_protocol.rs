//! Catch-up between nodes over `/netabase/sync/1.0.0`: nodes that were apart converge
//! to identical tables and indexes with the same winners, exchanging far fewer bytes
//! than their stores; tampered records and oversized messages are refused and counted.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use common::*;
use futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, noise, tcp, yamux};
use netabase::sync_protocol::{SYNC_PROTOCOL, SyncCodec, SyncReply, SyncRequest};
use netabase::{Error, NetabaseConfig, NetabaseEvent, SyncRole};
use netabase_store::backend::memory::MemoryBackend;
use netabase_store::kad::{KadStoreConfig, RecordSigner, author_of, record_key_for};
use netabase_store::sync::{Attestation, Reconciler, Version, VersionStamp};
use netabase_store::{NetabaseStore, OpenOptions};

fn sync_config() -> NetabaseConfig {
    config()
        .replicate(["User", "Post"])
        .with_sync_interval(None)
        .with_store_limits(KadStoreConfig {
            max_records: 100_000,
            ..KadStoreConfig::default()
        })
}

/// A put while apart: stored locally, reaching no peer is expected.
async fn put<M: netabase_store::schema::NetabaseModelTrait<BlogDefinition>>(
    node: &Node,
    model: M,
) -> TestResult {
    match node.put_record(model).await {
        Ok(_) | Err(Error::QuorumFailed { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn remove(node: &Node, id: u64) -> TestResult {
    match node.remove_record::<User>(UserPrimaryKey(id)).await {
        Ok(_) | Err(Error::QuorumFailed { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn post(id: u64, title: &str) -> Post {
    Post {
        id,
        title: title.into(),
        author: id % 7,
    }
}

fn named(id: u64, name: &str) -> User {
    User {
        name: name.into(),
        ..user(id)
    }
}

/// The session report of `node`'s next completed session with `peer`.
struct Report {
    bytes: u64,
    bytes_sent: u64,
    bytes_received: u64,
    round_trips: u64,
    applied: u64,
    refused: u64,
}

/// The report of the next session with `peer` that this node started.
async fn synced_with(
    events: &mut tokio::sync::broadcast::Receiver<NetabaseEvent>,
    peer: PeerId,
) -> TestResult<Report> {
    session_with(events, peer, SyncRole::Initiator).await
}

/// The report of the next session with `peer` in which this node was `role`.
async fn session_with(
    events: &mut tokio::sync::broadcast::Receiver<NetabaseEvent>,
    peer: PeerId,
    role: SyncRole,
) -> TestResult<Report> {
    wait_for(events, "a completed sync session", |e| match e {
        NetabaseEvent::Synced {
            peer: p,
            role: r,
            bytes_sent,
            bytes_received,
            round_trips,
            records_applied,
            records_refused,
            ..
        } if *p == peer && *r == role => Some(Ok(Report {
            bytes: bytes_sent + bytes_received,
            bytes_sent: *bytes_sent,
            bytes_received: *bytes_received,
            round_trips: *round_trips,
            applied: *records_applied,
            refused: *records_refused,
        })),
        NetabaseEvent::SyncFailed { peer: p, reason } if *p == peer => {
            Some(Err(format!("sync failed: {reason}")))
        }
        _ => None,
    })
    .await?
    .map_err(Into::into)
}

/// What each node holds of every key: the model (None: absent or removed).
#[derive(Debug, PartialEq)]
struct Snapshot {
    users: BTreeMap<u64, Option<User>>,
    posts: BTreeMap<u64, Option<Post>>,
}

fn snapshot(node: &Node, users: u64, posts: u64) -> TestResult<Snapshot> {
    let view = node.view();
    let mut snap = Snapshot {
        users: BTreeMap::new(),
        posts: BTreeMap::new(),
    };
    for id in 0..users {
        snap.users.insert(id, view.get::<User>(id)?);
    }
    for id in 0..posts {
        snap.posts.insert(id, view.get::<Post>(id)?);
    }
    Ok(snap)
}

/// The indexes as queries see them: posts per author, users per email.
/// Post ids per author, and the user found by each email.
type Indexes = (Vec<Vec<u64>>, Vec<Option<u64>>);

fn indexes(node: &Node, users: u64) -> TestResult<Indexes> {
    let view = node.view();
    let txn = view.read()?;
    let posts = txn.open_tree::<Post>();
    let mut by_author = Vec::new();
    for author in 0..7 {
        let mut ids: Vec<u64> = posts
            .get_by_secondary_key(PostSecondaryKeys::Author(PostAuthorSecondaryKey(author)))?
            .into_iter()
            .map(|p| p.id)
            .collect();
        ids.sort_unstable();
        by_author.push(ids);
    }
    let people = txn.open_tree::<User>();
    let mut by_email = Vec::new();
    for id in 0..users {
        let found = people
            .get_by_secondary_key(UserSecondaryKeys::Email(UserEmailSecondaryKey(
                user(id).email,
            )))?
            .into_iter()
            .map(|u| u.id)
            .next();
        by_email.push(found);
    }
    Ok((by_author, by_email))
}

/// Takes `a` and `b` apart: no connection, and neither in the other's routing table.
/// A user whose (unique) email every other such user shares.
fn same_email(id: u64) -> User {
    User {
        email: "shared@example.org".into(),
        ..user(id)
    }
}

/// Two users with the same unique email, written apart: 1 on `a`, 2 on `b`.
struct Conflict {
    winner: u64,
    loser: u64,
    /// The stamp of the loser's version.
    loser_stamp: VersionStamp,
}

async fn conflict(a: &Node, b: &Node) -> TestResult<Conflict> {
    put(a, same_email(1)).await?;
    put(b, same_email(2)).await?;
    let (sa, sb) = (
        a.view().version::<User>(1)?.ok_or("a's user")?.stamp,
        b.view().version::<User>(2)?.ok_or("b's user")?.stamp,
    );
    Ok(if sa > sb {
        Conflict {
            winner: 1,
            loser: 2,
            loser_stamp: sb,
        }
    } else {
        Conflict {
            winner: 2,
            loser: 1,
            loser_stamp: sa,
        }
    })
}

async fn part(a: &Node, b: &Node) -> TestResult {
    a.disconnect(b.peer_id()).await?;
    b.disconnect(a.peer_id()).await?;
    wait_until("the nodes are apart", || async {
        Ok(!a.connected_peers().await?.contains(&b.peer_id())
            && !b.connected_peers().await?.contains(&a.peer_id()))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_apart_converge_to_identical_tables_and_winners() -> TestResult {
    const BASE_USERS: u64 = 1000;
    const BASE_POSTS: u64 = 300;
    // Messages of at most 64 KiB: the catch-up travels in many round trips.
    let small = || sync_config().with_max_sync_message_bytes(64 * 1024);
    let a = start(small()).await?;
    let b = start(small()).await?;
    let c = start(small()).await?;
    for id in 0..BASE_USERS {
        put(&a, user(id)).await?;
    }
    for id in 0..BASE_POSTS {
        put(&a, post(id, "base")).await?;
    }

    // Fresh nodes catch up when they connect.
    let mut b_events = b.subscribe_to_broadcasts();
    b.add_address(a.peer_id(), first_addr(&a).await?).await?;
    let fresh = synced_with(&mut b_events, a.peer_id()).await?;
    assert_eq!(fresh.applied, BASE_USERS + BASE_POSTS);
    assert_eq!(fresh.refused, 0);
    assert!(fresh.round_trips >= 4, "{} round trips", fresh.round_trips);
    // More than one message may carry: the limit held because the records were split.
    assert!(fresh.bytes > 2 * 64 * 1024, "{} bytes", fresh.bytes);
    let mut c_events = c.subscribe_to_broadcasts();
    c.add_address(a.peer_id(), first_addr(&a).await?).await?;
    synced_with(&mut c_events, a.peer_id()).await?;
    assert_eq!(snapshot(&a, 1100, 400)?, snapshot(&b, 1100, 400)?);
    assert_eq!(snapshot(&a, 1100, 400)?, snapshot(&c, 1100, 400)?);

    // Two groups: {a, c} and {b}. Nothing reaches the other group until they
    // reconnect.
    part(&a, &b).await?;
    part(&c, &b).await?;

    // 200 writes in each group, some to the same keys (users 50..100, 255..260 and
    // posts 300..340 in both).
    for id in 0..100 {
        put(&a, named(id, "updated on a")).await?;
    }
    for id in 1000..1050 {
        put(&c, user(id)).await?;
    }
    for id in 250..260 {
        remove(&c, id).await?;
    }
    for id in 300..340 {
        put(&a, post(id, "a")).await?;
    }
    for id in 50..150 {
        put(&b, named(id, "updated on b")).await?;
    }
    for id in 1050..1100 {
        put(&b, user(id)).await?;
    }
    for id in 255..265 {
        remove(&b, id).await?;
    }
    for id in 300..340 {
        put(&b, post(id, "b")).await?;
    }
    // Inside the group, live updates (or a catch-up) bring a and c level.
    a.sync_with(c.peer_id()).await?;
    wait_until("a and c hold the same versions", || async {
        let (va, vc) = (a.view(), c.view());
        Ok(
            va.sync_fingerprint::<User>()? == vc.sync_fingerprint::<User>()?
                && va.sync_fingerprint::<Post>()? == vc.sync_fingerprint::<Post>()?,
        )
    })
    .await?;

    // The winner of each key is the version with the greater stamp, wherever it is.
    let (sa, sb) = (snapshot(&a, 1100, 400)?, snapshot(&b, 1100, 400)?);
    let mut expected = Snapshot {
        users: BTreeMap::new(),
        posts: BTreeMap::new(),
    };
    let (va, vb, vc) = (a.view(), b.view(), c.view());
    let mut contested = 0;
    for id in 0..1100u64 {
        let (x, y) = (va.version::<User>(id)?, vb.version::<User>(id)?);
        let from_a = match (x, y) {
            (Some(x), Some(y)) => {
                if x.stamp != y.stamp && x.stamp.writer != y.stamp.writer {
                    contested += 1;
                }
                x.stamp > y.stamp
            }
            (x, _) => x.is_some(),
        };
        let winner = if from_a { &sa } else { &sb };
        expected.users.insert(id, winner.users[&id].clone());
    }
    for id in 0..400u64 {
        let (x, y) = (va.version::<Post>(id)?, vb.version::<Post>(id)?);
        let from_a = match (x, y) {
            (Some(x), Some(y)) => x.stamp > y.stamp,
            (x, _) => x.is_some(),
        };
        let winner = if from_a { &sa } else { &sb };
        expected.posts.insert(id, winner.posts[&id].clone());
    }
    assert!(
        contested >= 50,
        "only {contested} keys written on both sides"
    );
    let full = va.sync_full_transfer_bytes()? + vb.sync_full_transfer_bytes()?;

    // Reconnect: the dialers reconcile (a with b, then c with b).
    let mut a_events = a.subscribe_to_broadcasts();
    a.add_address(b.peer_id(), first_addr(&b).await?).await?;
    let healed = synced_with(&mut a_events, b.peer_id()).await?;
    let mut c_events = c.subscribe_to_broadcasts();
    c.add_address(b.peer_id(), first_addr(&b).await?).await?;
    let healed_c = synced_with(&mut c_events, b.peer_id()).await?;

    let (sa, sb, sc) = (
        snapshot(&a, 1100, 400)?,
        snapshot(&b, 1100, 400)?,
        snapshot(&c, 1100, 400)?,
    );
    assert_eq!(sa, expected, "a does not hold the winners");
    assert_eq!(sb, expected, "b does not hold the winners");
    assert_eq!(sc, expected, "c does not hold the winners");
    assert_eq!(indexes(&a, 1100)?, indexes(&b, 1100)?);
    assert_eq!(indexes(&a, 1100)?, indexes(&c, 1100)?);
    for v in [&va, &vb, &vc] {
        // Each node's sync metadata agrees with the records it holds.
        v.sync_check()?;
    }
    for v in [&vb, &vc] {
        assert_eq!(
            va.sync_fingerprint::<User>()?,
            v.sync_fingerprint::<User>()?
        );
        assert_eq!(
            va.sync_fingerprint::<Post>()?,
            v.sync_fingerprint::<Post>()?
        );
    }
    // Both groups' changes travelled (a took b's winners, b took a's).
    assert!(healed.applied > 0);
    assert_eq!(healed.refused + healed_c.refused, 0);
    assert!(b.stats().sync_records_applied >= BASE_USERS + BASE_POSTS + 100);
    // Far below sending both stores whole.
    println!(
        "healed: {} bytes in {} round trips (a-b), {} bytes (c-b); \
         sending both stores: {full} bytes",
        healed.bytes, healed.round_trips, healed_c.bytes
    );
    assert!(
        healed.bytes * 3 < full,
        "{} bytes exchanged, {full} to send everything",
        healed.bytes
    );
    assert!(healed_c.bytes * 3 < full);
    // The node counters include the session's bytes.
    let s = a.stats();
    assert!(s.sync_bytes_sent + s.sync_bytes_received >= healed.bytes);
    a.close().await;
    b.close().await;
    c.close().await;
    Ok(())
}

// ----- a peer that misbehaves: a raw swarm speaking the protocol ----------------------

type Client = Swarm<request_response::Behaviour<SyncCodec>>;

fn client(keypair: Keypair, max_bytes: usize) -> TestResult<Client> {
    Ok(libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_behaviour(|_| {
            request_response::Behaviour::with_codec(
                SyncCodec::new(max_bytes),
                [(SYNC_PROTOCOL, request_response::ProtocolSupport::Full)],
                request_response::Config::default(),
            )
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(30)))
        .build())
}

/// The response to `id`, or the failure.
async fn response(client: &mut Client, id: OutboundRequestId) -> TestResult<SyncReply> {
    let waited = tokio::time::timeout(WAIT, async {
        loop {
            match client.select_next_some().await {
                SwarmEvent::Behaviour(request_response::Event::Message {
                    message:
                        request_response::Message::Response {
                            request_id,
                            response,
                        },
                    ..
                }) if request_id == id => return Ok(response),
                SwarmEvent::Behaviour(request_response::Event::OutboundFailure {
                    request_id,
                    error,
                    ..
                }) if request_id == id => return Err(error.to_string()),
                _ => {}
            }
        }
    })
    .await;
    match waited {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err("timed out waiting for a sync response".into()),
    }
}

/// Signs the client's versions, but damages some: a flipped signature bit, and a
/// signature over another value than the one sent.
struct Tampering {
    signer: RecordSigner,
    flip: HashSet<Vec<u8>>,
    other_value: HashSet<Vec<u8>>,
}

impl Attestation for Tampering {
    fn attach(&self, v: &Version<'_>) -> Option<Vec<u8>> {
        let key = record_key_for::<BlogDefinition>(v.model, v.key)?;
        if self.other_value.contains(v.key) {
            return self.signer.sign_version(&key, v.stamp, Some(b"not this"));
        }
        let mut signature = self.signer.sign_version(&key, v.stamp, v.value)?;
        if self.flip.contains(v.key) {
            signature[10] ^= 0x40;
        }
        Some(signature)
    }

    fn check(&self, _: &Version<'_>, _: Option<&[u8]>) -> Result<(), String> {
        Ok(())
    }
}

fn pk(id: u64) -> Vec<u8> {
    use netabase_store::codec::key::KeyCodec;
    UserPrimaryKey(id).to_key_bytes()
}

async fn connect(client: &mut Client, node: &Node) -> TestResult<PeerId> {
    let addr: Multiaddr = first_addr(node).await?;
    client.dial(addr.with(libp2p::multiaddr::Protocol::P2p(node.peer_id())))?;
    let peer = node.peer_id();
    tokio::time::timeout(WAIT, async {
        loop {
            if let SwarmEvent::ConnectionEstablished { peer_id, .. } =
                client.select_next_some().await
                && peer_id == peer
            {
                return;
            }
        }
    })
    .await
    .map_err(|_| "timed out connecting")?;
    Ok(peer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_records_in_a_session_are_refused_and_counted() -> TestResult {
    let node = start(sync_config()).await?;
    for id in 0..20 {
        put(&node, user(id)).await?;
    }
    let keypair = Keypair::generate_ed25519();
    let author = author_of(&keypair.public().to_peer_id()).ok_or("not ed25519")?;
    let store = NetabaseStore::<BlogDefinition, _>::from_backend_with(
        MemoryBackend::new(),
        OpenOptions::default()
            .sync_model("User")
            .sync_model("Post")
            .writer_id(author),
    )?;
    for id in 100..110 {
        store.open_tree::<User>().put(user(id))?;
    }
    let attestation = Tampering {
        signer: RecordSigner::new(&keypair)?,
        flip: [pk(103)].into_iter().collect(),
        other_value: [pk(104)].into_iter().collect(),
    };
    let mut client = client(keypair, 1 << 20)?;
    let peer = connect(&mut client, &node).await?;

    // A whole session, driven by hand.
    let mut reconciler = Reconciler::new(&store)?.with_attestation(attestation);
    let mut next = Some(reconciler.initiate()?);
    while let Some(bytes) = next.take() {
        let id = client
            .behaviour_mut()
            .send_request(&peer, SyncRequest::Message(bytes));
        match response(&mut client, id).await? {
            SyncReply::Message(bytes) => next = reconciler.respond(&bytes)?,
            SyncReply::Done => {}
            other => return Err(format!("answered {other:?}").into()),
        }
    }

    let stats = node.stats();
    assert_eq!(stats.sync_records_refused, 2, "{stats:?}");
    // Refused by the apply path every route shares, and counted as its refusals are.
    assert_eq!(stats.refused_bad_signature, 2, "{stats:?}");
    assert_eq!(stats.sync_records_applied, 8);
    let view = node.view();
    assert_eq!(
        view.get::<User>(103)?,
        None,
        "a flipped signature was accepted"
    );
    assert_eq!(
        view.get::<User>(104)?,
        None,
        "an altered value was accepted"
    );
    for id in (100..110).filter(|id| ![103, 104].contains(id)) {
        assert_eq!(view.get::<User>(id)?, Some(user(id)));
    }
    // The node's own records reached the client, with signatures it could check.
    assert_eq!(store.open_tree::<User>().len()?, 30);
    node.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_is_refused_unread() -> TestResult {
    let node = start(sync_config().with_max_sync_message_bytes(64 * 1024)).await?;
    put(&node, user(1)).await?;
    let mut events = node.subscribe_to_broadcasts();
    let mut client = client(Keypair::generate_ed25519(), 1 << 20)?;
    let peer = connect(&mut client, &node).await?;

    let id = client
        .behaviour_mut()
        .send_request(&peer, SyncRequest::Message(vec![0u8; 64 * 1024]));
    // The node stops reading at the length and drops the stream: no answer.
    assert!(response(&mut client, id).await.is_err(), "answered");
    assert_eq!(node.stats().sync_messages_refused, 1);
    assert_eq!(node.stats().sync_records_applied, 0);

    // A message within the limit that is not a message is refused too, with a reply.
    let id = client
        .behaviour_mut()
        .send_request(&peer, SyncRequest::Message(vec![0xff; 100]));
    match response(&mut client, id).await? {
        SyncReply::Refused(reason) => assert!(reason.contains("not a message"), "{reason}"),
        other => return Err(format!("answered {other:?}").into()),
    }
    wait_for(&mut events, "the failed session", |e| {
        matches!(e, NetabaseEvent::SyncFailed { .. }).then_some(())
    })
    .await?;
    assert_eq!(node.stats().sync_failures, 1);
    assert_eq!(node.stats().sync_messages_refused, 1);
    assert_eq!(node.view().get::<User>(1)?, Some(user(1)));
    node.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connected_nodes_reconcile_every_interval_and_on_demand() -> TestResult {
    let periodic = || {
        sync_config()
            .with_sync_interval(Some(Duration::from_millis(300)))
            .with_idle_connection_timeout(Duration::from_secs(30))
    };
    let a = start(periodic()).await?;
    let b = start(periodic()).await?;
    let mut a_events = a.subscribe_to_broadcasts();
    a.add_address(b.peer_id(), first_addr(&b).await?).await?;
    synced_with(&mut a_events, b.peer_id()).await?;

    // Sessions follow every interval while the nodes stay connected.
    for _ in 0..2 {
        synced_with(&mut a_events, b.peer_id()).await?;
    }

    // On demand: a write made on b while apart reaches a by the session a starts
    // (dialling b again), not by a live update.
    part(&a, &b).await?;
    put(&b, user(8)).await?;
    assert_eq!(a.view().get::<User>(8)?, None);
    b.add_address(a.peer_id(), first_addr(&a).await?).await?;
    a.add_address(b.peer_id(), first_addr(&b).await?).await?;
    a.sync_with(b.peer_id()).await?;
    wait_until("user 8 reached a", || async {
        Ok(a.view().get::<User>(8)?.is_some())
    })
    .await?;

    // A node without synced models refuses to start one.
    let plain = start(config()).await?;
    assert!(matches!(
        plain.sync_with(a.peer_id()).await,
        Err(Error::NotSynced)
    ));
    for node in [a, b, plain] {
        node.close().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnected_nodes_stay_apart_until_the_application_names_each_other_again() -> TestResult
{
    // Three replicas that reconcile every 200 ms (each round also looks the other
    // replicas up in the DHT and dials those it is not connected to).
    let periodic = || sync_config().with_sync_interval(Some(Duration::from_millis(200)));
    let (a, b, c) = (
        start(periodic()).await?,
        start(periodic()).await?,
        start(periodic()).await?,
    );
    let mut a_events = a.subscribe_to_broadcasts();
    for other in [&b, &c] {
        a.add_address(other.peer_id(), first_addr(other).await?)
            .await?;
        synced_with(&mut a_events, other.peer_id()).await?;
    }
    b.add_address(c.peer_id(), first_addr(&c).await?).await?;
    part(&a, &b).await?;

    // Several rounds later (counted by a's sessions with c, which tells a about b),
    // a and b are still apart: neither discovery, nor a query, nor a periodic session
    // dialled the other back.
    for _ in 0..4 {
        synced_with(&mut a_events, c.peer_id()).await?;
        assert!(!a.connected_peers().await?.contains(&b.peer_id()));
        assert!(!b.connected_peers().await?.contains(&a.peer_id()));
    }

    // Named again, they reconnect and reconcile.
    a.add_address(b.peer_id(), first_addr(&b).await?).await?;
    synced_with(&mut a_events, b.peer_id()).await?;
    for node in [a, b, c] {
        node.close().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unique_key_taken_on_both_sides_goes_to_the_greater_stamp_on_both() -> TestResult {
    let a = start(sync_config()).await?;
    let b = start(sync_config()).await?;
    let Conflict {
        winner,
        loser,
        loser_stamp,
    } = conflict(&a, &b).await?;

    let mut events = a.subscribe_to_broadcasts();
    a.add_address(b.peer_id(), first_addr(&b).await?).await?;
    synced_with(&mut events, b.peer_id()).await?;
    for node in [&a, &b] {
        let view = node.view();
        assert_eq!(view.get::<User>(winner)?, Some(same_email(winner)));
        assert_eq!(view.get::<User>(loser)?, None);
        let found =
            view.read()?
                .open_tree::<User>()
                .get_by_secondary_key(UserSecondaryKeys::Email(UserEmailSecondaryKey(
                    "shared@example.org".into(),
                )))?;
        assert_eq!(found, vec![same_email(winner)]);
        // The loser's key holds the same tombstone on both: the one its loss leaves,
        // whether it was displaced here or refused.
        let lost = view.version::<User>(loser)?.ok_or("no tombstone")?;
        assert!(lost.tombstone);
        assert_eq!(lost.stamp, loser_stamp.successor());
    }
    // Identical sync state: equal fingerprints, and a second session moves no record
    // either way (none applied, none refused on either node).
    assert_eq!(
        a.view().sync_fingerprint::<User>()?,
        b.view().sync_fingerprint::<User>()?
    );
    a.view().sync_check()?;
    b.view().sync_check()?;
    let (before_a, before_b) = (a.stats(), b.stats());
    a.sync_with(b.peer_id()).await?;
    let again = synced_with(&mut events, b.peer_id()).await?;
    assert_eq!((again.applied, again.refused), (0, 0));
    let (after_a, after_b) = (a.stats(), b.stats());
    for (before, after) in [(&before_a, &after_a), (&before_b, &after_b)] {
        assert_eq!(after.sync_records_applied, before.sync_records_applied);
        assert_eq!(after.sync_records_refused, before.sync_records_refused);
    }
    a.close().await;
    b.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_ends_of_a_session_report_it() -> TestResult {
    let a = start(sync_config()).await?;
    let b = start(sync_config()).await?;
    // Apart: two users on a, three on b.
    for id in [1, 2] {
        put(&a, user(id)).await?;
    }
    for id in [10, 11, 12] {
        put(&b, user(id)).await?;
    }
    let (mut a_events, mut b_events) = (a.subscribe_to_broadcasts(), b.subscribe_to_broadcasts());
    // a dials b, so a starts the session and b answers it.
    a.add_address(b.peer_id(), first_addr(&b).await?).await?;
    let started = synced_with(&mut a_events, b.peer_id()).await?;
    let answered = session_with(&mut b_events, a.peer_id(), SyncRole::Responder).await?;
    // Each side reports its own figures, mirrored.
    assert_eq!((started.applied, answered.applied), (3, 2));
    assert_eq!((started.refused, answered.refused), (0, 0));
    assert_eq!(started.bytes_sent, answered.bytes_received);
    assert_eq!(started.bytes_received, answered.bytes_sent);
    assert_eq!(started.round_trips, answered.round_trips);
    assert!(answered.bytes_sent > 0);

    // A session with nothing to exchange ends with the responder's `Done`: reported
    // on both sides too.
    a.sync_with(b.peer_id()).await?;
    let started = synced_with(&mut a_events, b.peer_id()).await?;
    let answered = session_with(&mut b_events, a.peer_id(), SyncRole::Responder).await?;
    assert_eq!((started.applied, answered.applied), (0, 0));
    assert_eq!(started.bytes_sent, answered.bytes_received);
    assert_eq!(started.bytes_received, answered.bytes_sent);

    // Counted apart: sessions started, sessions answered.
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!((sa.sync_sessions, sa.sync_sessions_answered), (2, 0));
    assert_eq!((sb.sync_sessions, sb.sync_sessions_answered), (0, 2));
    assert_eq!(sa.sync_failures + sb.sync_failures, 0);
    a.close().await;
    b.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_node_takes_the_tombstone_of_a_lost_unique_key_from_either_side() -> TestResult {
    let a = start(sync_config()).await?;
    let b = start(sync_config()).await?;
    let Conflict {
        winner,
        loser,
        loser_stamp,
    } = conflict(&a, &b).await?;
    let mut events = a.subscribe_to_broadcasts();
    a.add_address(b.peer_id(), first_addr(&b).await?).await?;
    synced_with(&mut events, b.peer_id()).await?;
    part(&a, &b).await?;

    // The loser's tombstone has no author to sign it: each side sends the lost record
    // in its place, and a fresh node that catches up from that side alone derives the
    // same tombstone from it and the winner.
    for source in [&a, &b] {
        let fresh = start(sync_config()).await?;
        let mut events = fresh.subscribe_to_broadcasts();
        fresh
            .add_address(source.peer_id(), first_addr(source).await?)
            .await?;
        synced_with(&mut events, source.peer_id()).await?;
        let view = fresh.view();
        assert_eq!(view.get::<User>(winner)?, Some(same_email(winner)));
        assert_eq!(view.get::<User>(loser)?, None);
        let lost = view.version::<User>(loser)?.ok_or("no tombstone")?;
        assert!(lost.tombstone);
        assert_eq!(lost.stamp, loser_stamp.successor());
        assert_eq!(
            view.sync_fingerprint::<User>()?,
            source.view().sync_fingerprint::<User>()?
        );
        view.sync_check()?;
        // Nothing left to move either way.
        let (before_fresh, before_source) = (fresh.stats(), source.stats());
        fresh.sync_with(source.peer_id()).await?;
        let again = synced_with(&mut events, source.peer_id()).await?;
        assert_eq!((again.applied, again.refused), (0, 0));
        let (after_fresh, after_source) = (fresh.stats(), source.stats());
        for (before, after) in [
            (&before_fresh, &after_fresh),
            (&before_source, &after_source),
        ] {
            assert_eq!(after.sync_records_applied, before.sync_records_applied);
            assert_eq!(after.sync_records_refused, before.sync_records_refused);
        }
        fresh.close().await;
    }
    a.close().await;
    b.close().await;
    Ok(())
}
