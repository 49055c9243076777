//! Per-endpoint concurrency: how many attempts one endpoint gets at once, and what a
//! delivery does when its endpoint is at the limit.
//!
//! A healthy endpoint that is merely busy is waited for (bounded by `permit_wait`: it drains
//! quickly, and waiting keeps order and spares the broker a round trip through a tier); a
//! failing one is not (its deliveries go to the shortest tier instead of occupying slots
//! healthy endpoints need).

use herald_core::ids::EndpointId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How hard one endpoint may be driven.
#[derive(Debug, Clone, Copy)]
pub struct EndpointLimits {
    /// Attempts to one endpoint at once.
    pub concurrency: usize,
    /// How long a delivery waits for a busy, healthy endpoint before it is deferred.
    pub permit_wait: Duration,
}

/// The slots of every endpoint seen so far.
pub struct EndpointSlots {
    limits: EndpointLimits,
    slots: Mutex<HashMap<EndpointId, Arc<Semaphore>>>,
}

impl EndpointSlots {
    /// No endpoint seen yet.
    pub fn new(limits: EndpointLimits) -> Self {
        Self {
            limits,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// A slot of `endpoint`'s limit, held for one attempt. `None` (defer the delivery) when
    /// none is free and the endpoint is failing, or none freed up within `permit_wait`.
    pub async fn acquire(
        &self,
        endpoint: &EndpointId,
        healthy: bool,
    ) -> Option<OwnedSemaphorePermit> {
        let semaphore = self
            .slots
            .lock()
            .expect("slots lock")
            .entry(endpoint.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(self.limits.concurrency)))
            .clone();
        if let Ok(permit) = semaphore.clone().try_acquire_owned() {
            return Some(permit);
        }
        if !healthy {
            return None;
        }
        tokio::time::timeout(self.limits.permit_wait, semaphore.acquire_owned())
            .await
            .ok()
            .and_then(Result::ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots() -> EndpointSlots {
        EndpointSlots::new(EndpointLimits {
            concurrency: 2,
            permit_wait: Duration::from_secs(5),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_healthy_endpoint_is_waited_for_and_a_failing_one_is_not() {
        let slots = slots();
        let (a, b) = (EndpointId::generate(1), EndpointId::generate(2));
        let first = slots.acquire(&a, true).await.unwrap();
        let _second = slots.acquire(&a, true).await.unwrap();
        assert!(
            slots.acquire(&a, false).await.is_none(),
            "failing: deferred at once"
        );
        assert!(
            slots.acquire(&b, false).await.is_some(),
            "endpoints are independent"
        );
        // Healthy and busy: waits, and gets the slot as soon as one is released.
        let waiter = slots.acquire(&a, true);
        let release = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            drop(first);
        };
        let (got, ()) = tokio::join!(waiter, release);
        assert!(got.is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_healthy_endpoint_busy_past_the_wait_is_deferred() {
        let slots = slots();
        let a = EndpointId::generate(1);
        let _held = (slots.acquire(&a, true).await, slots.acquire(&a, true).await);
        let started = tokio::time::Instant::now();
        assert!(slots.acquire(&a, true).await.is_none());
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }
}
