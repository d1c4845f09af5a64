//! Live updates: replicas of a definition push each signed record (and tombstone) they
//! commit to each other over gossipsub, one topic per definition.
//!
//! A message is one signed record: its record key and its signed envelope, as a DHT put
//! carries them. Receivers check it exactly as they check a DHT put (envelope, model,
//! size, then signature, version rule and permissions on the storage worker), so a
//! live update is just another inbound route to the same apply path. Messages are
//! bounded by the record size limit plus [`PACKET_OVERHEAD`](crate::PACKET_OVERHEAD).

use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, ValidationMode};
use libp2p::identity::Keypair;
use libp2p::kad::{Record, RecordKey};
use serde::{Deserialize, Serialize};

use crate::config::NetabaseConfig;

/// The gossipsub topic of definition `definition`: `/netabase/<definition>/1`.
pub fn topic(definition: &str) -> IdentTopic {
    IdentTopic::new(format!("/netabase/{definition}/1"))
}

/// A live update on the wire.
#[derive(Serialize, Deserialize)]
struct LiveRecord {
    key: Vec<u8>,
    envelope: Vec<u8>,
}

/// The message carrying `record` (a signed record, as stored and published).
pub(crate) fn encode(record: &Record) -> Option<Vec<u8>> {
    postcard::to_allocvec(&LiveRecord {
        key: record.key.to_vec(),
        envelope: record.value.clone(),
    })
    .ok()
}

/// The record a message carries (not yet checked).
pub(crate) fn decode(data: &[u8]) -> Result<Record, String> {
    let live: LiveRecord =
        postcard::from_bytes(data).map_err(|e| format!("not a live update: {e}"))?;
    Ok(Record::new(RecordKey::from(live.key), live.envelope))
}

/// The gossipsub behaviour of a replicating node: messages signed by the node identity
/// (gossipsub's own authenticity; the records inside carry their author's signature),
/// at most one record long.
pub(crate) fn behaviour(
    key: &Keypair,
    config: &NetabaseConfig,
    definition: &str,
) -> Result<gossipsub::Behaviour, String> {
    let gossip_config = gossipsub::ConfigBuilder::default()
        .validation_mode(ValidationMode::Strict)
        .max_transmit_size(config.max_packet_size())
        .build()
        .map_err(|e| e.to_string())?;
    let mut gossip =
        gossipsub::Behaviour::new(MessageAuthenticity::Signed(key.clone()), gossip_config)
            .map_err(str::to_owned)?;
    gossip
        .subscribe(&topic(definition))
        .map_err(|e| e.to_string())?;
    Ok(gossip)
}
