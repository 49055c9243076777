//! Re-sealing after a master-key rotation: every endpoint whose secrets are sealed under a
//! previous master key is written again (its next version, nothing else changed) sealed
//! under the current one, and audited. Once none is left, the previous key can go.

use crate::state::IngestState;
use herald_kafka::audit::Actor;
use serde_json::{json, Value};

/// What a re-seal did.
#[derive(Debug, Default)]
pub struct Resealed {
    pub resealed: Vec<String>,
    /// Endpoints that could not be written (with why); run it again.
    pub failed: Vec<(String, String)>,
}

impl Resealed {
    /// The JSON the CLI prints.
    pub fn to_json(&self, state: &IngestState) -> Value {
        json!({
            "master_key": state.endpoints.master_key().id(),
            "resealed": self.resealed,
            "failed": self.failed.iter().map(|(id, why)| json!({"endpoint_id": id, "error": why})).collect::<Vec<_>>(),
            "still_sealed_with_previous_key": state.endpoints.sealed_with_previous_key().len(),
        })
    }
}

/// Re-seals every endpoint still sealed under a previous master key. Refuses, writing
/// nothing, while any endpoint record does not open: the view then holds an older version
/// of that endpoint, and writing it again would undo the newer change it cannot read.
pub async fn reseal_all(state: &IngestState, actor: &Actor) -> Result<Resealed, String> {
    let unreadable = state.endpoints.unreadable();
    if let Some((key, why)) = unreadable.first() {
        return Err(format!(
            "{} endpoint record(s) do not open with the configured keys (first {key}: {why}); add the key that sealed them to previous_master_keys; nothing was re-sealed",
            unreadable.len()
        ));
    }
    let mut done = Resealed::default();
    let key_id = state.endpoints.master_key().id();
    for id in state.endpoints.sealed_with_previous_key() {
        let Some(entry) = state.endpoints.get(&id) else {
            continue;
        };
        match crate::endpoints::store(state, &entry.endpoint, entry.version + 1).await {
            Ok(()) => {
                state
                    .audit(
                        actor,
                        &entry.endpoint.tenant,
                        "endpoint.resealed",
                        id.as_str(),
                        json!({"master_key": key_id, "version": entry.version + 1}),
                    )
                    .await;
                done.resealed.push(id.to_string());
            }
            Err(err) => done.failed.push((id.to_string(), err.message)),
        }
    }
    Ok(done)
}
