//! Per-endpoint concurrency: how many attempts one endpoint gets at once, and what a
//! delivery does when its endpoint is at the limit.
//!
//! A healthy endpoint that is merely busy is waited for (bounded by `permit_wait`: it drains
//! quickly, and waiting keeps order and spares the broker a round trip through a tier); a
//! failing one is not (its deliveries wait in a retry tier, one tier longer per deferral in a
//! row, instead of occupying slots healthy endpoints need). Neither is a *stalled* one: every slot taken and none freed for
//! `stalled_after`. An endpoint that accepts connections and never answers looks healthy
//! until its first attempts time out; without this, every event's fan-out would wait for it
//! (holding the event's in-flight slot), and the healthy endpoints would be served at the
//! pace of the hanging one.

use herald_core::ids::EndpointId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// How hard one endpoint may be driven.
#[derive(Debug, Clone, Copy)]
pub struct EndpointLimits {
    /// Attempts to one endpoint at once.
    pub concurrency: usize,
    /// How long a delivery waits for a busy, healthy endpoint before it is deferred.
    pub permit_wait: Duration,
    /// An endpoint whose slots are all taken and none was freed (or taken) for this long is
    /// stalled: its deliveries are deferred at once instead of waiting.
    pub stalled_after: Duration,
}

/// One endpoint's slots and when they last moved.
struct Endpoint {
    semaphore: Arc<Semaphore>,
    /// Milliseconds since [`EndpointSlots::epoch`] when a slot was last freed, or taken while
    /// others were free (the endpoint was not full then).
    moved_ms: Arc<AtomicU64>,
}

/// A slot of one endpoint, held for one attempt; freeing it records that the endpoint moved.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    moved_ms: Arc<AtomicU64>,
    epoch: Instant,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.moved_ms
            .store(millis_since(self.epoch), Ordering::Relaxed);
    }
}

fn millis_since(epoch: Instant) -> u64 {
    epoch.elapsed().as_millis().min(u128::from(u64::MAX)) as u64
}

/// The slots of every endpoint seen so far.
pub struct EndpointSlots {
    limits: EndpointLimits,
    epoch: Instant,
    slots: Mutex<HashMap<EndpointId, Endpoint>>,
}

impl EndpointSlots {
    /// No endpoint seen yet.
    pub fn new(limits: EndpointLimits) -> Self {
        Self {
            limits,
            epoch: Instant::now(),
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// A slot of `endpoint`'s limit, held for one attempt. `None` (defer the delivery) when
    /// none is free and the endpoint is failing or stalled, or none freed up within
    /// `permit_wait`, or the endpoint stalled while this waited.
    pub async fn acquire(&self, endpoint: &EndpointId, healthy: bool) -> Option<Slot> {
        let (semaphore, moved_ms) = {
            let mut slots = self.slots.lock().expect("slots lock");
            let entry = slots.entry(endpoint.clone()).or_insert_with(|| Endpoint {
                semaphore: Arc::new(Semaphore::new(self.limits.concurrency)),
                moved_ms: Arc::new(AtomicU64::new(millis_since(self.epoch))),
            });
            (entry.semaphore.clone(), entry.moved_ms.clone())
        };
        let slot = |permit| Slot {
            _permit: permit,
            moved_ms: moved_ms.clone(),
            epoch: self.epoch,
        };
        if let Ok(permit) = semaphore.clone().try_acquire_owned() {
            if semaphore.available_permits() > 0 {
                moved_ms.store(millis_since(self.epoch), Ordering::Relaxed);
            }
            return Some(slot(permit));
        }
        if !healthy {
            return None;
        }
        let deadline = Instant::now() + self.limits.permit_wait;
        let stalled_after = self.limits.stalled_after.as_millis() as u64;
        loop {
            // The endpoint moved at `moved`; it counts as stalled from `moved + stalled_after`.
            let moved = moved_ms.load(Ordering::Relaxed);
            let stalls_at = self.epoch + Duration::from_millis(moved + stalled_after);
            if stalls_at <= Instant::now() {
                metrics::counter!("herald_endpoint_stalled_deferrals_total").increment(1);
                return None;
            }
            let wake = stalls_at.min(deadline);
            match tokio::time::timeout_at(wake, semaphore.clone().acquire_owned()).await {
                Ok(Ok(permit)) => return Some(slot(permit)),
                Ok(Err(_closed)) => return None,
                Err(_elapsed) if Instant::now() >= deadline => return None,
                // Woken at the stall time: stalled unless a slot moved meanwhile (freed to
                // an earlier waiter), in which case this keeps waiting its turn.
                Err(_elapsed) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(stalled_after: u64) -> EndpointSlots {
        EndpointSlots::new(EndpointLimits {
            concurrency: 2,
            permit_wait: Duration::from_secs(5),
            stalled_after: Duration::from_secs(stalled_after),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_healthy_endpoint_is_waited_for_and_a_failing_one_is_not() {
        let slots = slots(60);
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
        let slots = slots(60);
        let a = EndpointId::generate(1);
        let _held = (slots.acquire(&a, true).await, slots.acquire(&a, true).await);
        let started = Instant::now();
        assert!(slots.acquire(&a, true).await.is_none());
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn an_endpoint_that_frees_no_slot_is_stalled_and_not_waited_for() {
        let slots = slots(1);
        let a = EndpointId::generate(1);
        let _held = (slots.acquire(&a, true).await, slots.acquire(&a, true).await);
        let started = Instant::now();
        assert!(slots.acquire(&a, true).await.is_none());
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(1),
            "waited until it counted as stalled, not the whole permit_wait"
        );
        let started = Instant::now();
        assert!(slots.acquire(&a, true).await.is_none());
        assert_eq!(
            started.elapsed(),
            Duration::ZERO,
            "stalled: deferred at once"
        );
        drop(_held);
        assert!(
            slots.acquire(&a, true).await.is_some(),
            "a freed slot ends the stall"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_endpoint_that_keeps_freeing_slots_is_waited_for_past_the_stall_time() {
        let slots = EndpointSlots::new(EndpointLimits {
            concurrency: 1,
            permit_wait: Duration::from_secs(10),
            stalled_after: Duration::from_secs(1),
        });
        let a = EndpointId::generate(1);
        let holder = slots.acquire(&a, true).await.unwrap();
        let started = Instant::now();
        // A waits its turn, B behind it; each attempt takes 0.8 s, so the endpoint moves
        // every 0.8 s although B waits 1.6 s in all.
        let first = async {
            let slot = slots.acquire(&a, true).await;
            tokio::time::sleep(Duration::from_millis(800)).await;
            slot.is_some()
        };
        let second = async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            let slot = slots.acquire(&a, true).await;
            (slot.is_some(), started.elapsed())
        };
        let release = async {
            tokio::time::sleep(Duration::from_millis(800)).await;
            drop(holder);
        };
        let (first, (second, waited), ()) = tokio::join!(first, second, release);
        assert!(first && second, "neither deferred");
        assert_eq!(waited, Duration::from_millis(1_600));
    }
}
