//! Stops a run early, with a reason, when the Herald under load dies, panics or stalls, so a
//! broken run ends in seconds instead of waiting out its timeouts.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Set once; read by the clients and the wait loops.
#[derive(Default)]
pub struct Watchdog {
    tripped: AtomicBool,
    reason: Mutex<Option<String>>,
}

impl Watchdog {
    pub fn tripped(&self) -> bool {
        self.tripped.load(Ordering::Relaxed)
    }

    pub fn reason(&self) -> Option<String> {
        self.reason.lock().expect("reason lock").clone()
    }

    fn trip(&self, reason: String) {
        let mut slot = self.reason.lock().expect("reason lock");
        if slot.is_none() {
            eprintln!("herald-load: stopping early: {reason}");
            *slot = Some(reason);
        }
        self.tripped.store(true, Ordering::Relaxed);
    }
}

/// A watched process: its name, pid and (when spawned here) its log.
pub struct Watched {
    pub name: String,
    pub pid: u32,
    pub log: Option<PathBuf>,
}

/// Checks every second: a watched process gone, a `panicked` line in a log, or `progress()`
/// unchanged for `stall` while `done()` is false.
pub fn spawn(
    dog: Arc<Watchdog>,
    watched: Vec<Watched>,
    stall: Duration,
    progress: impl Fn() -> (usize, usize) + Send + 'static,
    done: impl Fn() -> bool + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut offsets = vec![0u64; watched.len()];
        let (mut last, mut since) = (progress(), Instant::now());
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            for (w, offset) in watched.iter().zip(offsets.iter_mut()) {
                if crate::procs::usage(w.pid).is_none() {
                    dog.trip(format!("{} (pid {}) exited", w.name, w.pid));
                }
                if let Some(line) = w.log.as_ref().and_then(|log| new_panic(log, offset)) {
                    dog.trip(format!("{} panicked: {line}", w.name));
                }
            }
            let now = progress();
            if now != last || done() {
                (last, since) = (now, Instant::now());
            } else if since.elapsed() > stall {
                dog.trip(format!(
                    "no progress for {} s ({} accepted, {} delivered)",
                    stall.as_secs(),
                    now.0,
                    now.1
                ));
            }
        }
    })
}

/// The first line mentioning a panic in what `log` gained since `offset`.
fn new_panic(log: &PathBuf, offset: &mut u64) -> Option<String> {
    let mut file = std::fs::File::open(log).ok()?;
    file.seek(SeekFrom::Start(*offset)).ok()?;
    let mut text = String::new();
    let read = file.read_to_string(&mut text).unwrap_or(0);
    *offset += read as u64;
    text.lines()
        .find(|l| l.contains("panicked"))
        .map(|l| l.chars().take(300).collect())
}
