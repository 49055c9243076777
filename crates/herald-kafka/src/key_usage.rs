//! When and from where each API key was used lately, coarse on purpose: a request notes its
//! key in memory; a flush writes one `usage/<key id>` record per key used since the last one
//! to `keys.v1` (merged with what the topic held, so processes add to each other's record),
//! never a write per request. The rules live here; [`crate::keys::KeysView`] notes, reads
//! and flushes.

use herald_core::ids::KeyId;
use herald_core::UnixMillis;
use herald_proto::v1;
use std::collections::HashMap;

/// The record key prefix of usage records in `keys.v1`.
pub const USAGE_PREFIX: &str = "usage/";
/// Most source addresses kept per key (the most recent).
pub const MAX_ADDRESSES: usize = 5;

/// Adds `other` to `into`: the later last use, the most recent addresses.
pub fn merge(into: &mut v1::KeyUsage, other: &v1::KeyUsage) {
    into.last_used_at_ms = into.last_used_at_ms.max(other.last_used_at_ms);
    for seen in &other.addresses {
        note_address(into, &seen.address, seen.last_seen_at_ms);
    }
}

fn note_address(usage: &mut v1::KeyUsage, address: &str, at: UnixMillis) {
    if address.is_empty() {
        return;
    }
    match usage.addresses.iter_mut().find(|a| a.address == address) {
        Some(known) => known.last_seen_at_ms = known.last_seen_at_ms.max(at),
        None => usage.addresses.push(v1::AddressUse {
            address: address.to_owned(),
            last_seen_at_ms: at,
        }),
    }
    usage
        .addresses
        .sort_by_key(|a| std::cmp::Reverse(a.last_seen_at_ms));
    usage.addresses.truncate(MAX_ADDRESSES);
}

/// Notes one use of `usage`'s key from `address` (empty: unknown) at `at`.
pub fn note(usage: &mut v1::KeyUsage, address: &str, at: UnixMillis) {
    usage.last_used_at_ms = usage.last_used_at_ms.max(at);
    note_address(usage, address, at);
}

/// Folds one usage record (`id` is the key id after the prefix) into `usage`.
pub(crate) fn fold(usage: &mut HashMap<KeyId, v1::KeyUsage>, id: &str, value: Option<&[u8]>) {
    let Ok(id) = KeyId::parse(id) else {
        return;
    };
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        usage.remove(&id);
        return;
    };
    match herald_proto::decode::<v1::KeyUsage>("key usage", value) {
        // A record only ever adds: an older write racing a newer one loses nothing seen.
        Ok(record) => merge(usage.entry(id).or_default(), &record),
        Err(err) => tracing::error!(error = %err, "Unreadable key usage record."),
    }
}

/// Uses noted since the last flush, by key.
pub(crate) type Pending = HashMap<KeyId, v1::KeyUsage>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_keeps_the_latest_use_and_the_most_recent_addresses() {
        let mut usage = v1::KeyUsage::default();
        for (i, address) in ["10.0.0.1", "10.0.0.2", "10.0.0.1", "", "10.0.0.3"]
            .into_iter()
            .enumerate()
        {
            note(&mut usage, address, 1_000 + i as i64);
        }
        assert_eq!(usage.last_used_at_ms, 1_004);
        let addresses: Vec<_> = usage.addresses.iter().map(|a| a.address.as_str()).collect();
        assert_eq!(addresses, ["10.0.0.3", "10.0.0.1", "10.0.0.2"]);
        assert_eq!(usage.addresses[1].last_seen_at_ms, 1_002);
        for i in 0..10 {
            note(&mut usage, &format!("192.0.2.{i}"), 2_000 + i);
        }
        assert_eq!(usage.addresses.len(), MAX_ADDRESSES);
        assert_eq!(usage.addresses[0].address, "192.0.2.9");
    }

    #[test]
    fn merging_an_older_record_loses_nothing_newer() {
        let mut newer = v1::KeyUsage::default();
        note(&mut newer, "10.0.0.9", 5_000);
        let mut older = v1::KeyUsage::default();
        note(&mut older, "10.0.0.1", 1_000);
        note(&mut older, "10.0.0.9", 900);
        merge(&mut newer, &older);
        assert_eq!(newer.last_used_at_ms, 5_000);
        assert_eq!(newer.addresses.len(), 2);
        assert_eq!(newer.addresses[0].address, "10.0.0.9");
        assert_eq!(newer.addresses[0].last_seen_at_ms, 5_000);
    }
}
