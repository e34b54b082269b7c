//! Synchronous ring-buffer pollers: one thread per ring buffer, decoding
//! samples and handing them to the cleanup worker. Never slow work here:
//! decode, try_send, count what could not be sent.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Samples waiting for the worker beyond which a poller waits (leaving the
/// rest in the kernel's ring buffer): a burst of 50,000 lock creations is
/// absorbed, and the queue's memory is only ever what is waiting.
pub const MAX_QUEUED: usize = 65536;

use anyhow::{Context, Result};
use crossbeam_channel::{Sender, TrySendError};
use libbpf_rs::{MapCore, RingBufferBuilder};

/// Poll `map` until `stop` is set, sending `decode(sample)` to `tx`.
/// Samples that cannot be used (undecodable, worker queue full) are
/// counted in `dropped`.
pub fn run<E, D>(
    map: &dyn MapCore,
    decode: D,
    tx: &Sender<E>,
    stop: &AtomicBool,
    dropped: &AtomicU64,
) -> Result<()>
where
    D: Fn(&[u8]) -> Result<E, String>,
{
    let mut builder = RingBufferBuilder::new();
    builder
        .add(map, |data: &[u8]| {
            match decode(data) {
                Ok(ev) => {
                    // wait for room in the worker's queue (the worker may
                    // spend seconds on one batch: 50,000 locks of owners
                    // killed at once); meanwhile the kernel's ring buffer
                    // holds the rest and counts what it cannot hold. Only
                    // a stop ends the wait, counting the sample as dropped.
                    while tx.len() >= MAX_QUEUED {
                        if stop.load(Ordering::Relaxed) {
                            dropped.fetch_add(1, Ordering::Relaxed);
                            return 0;
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    match tx.try_send(ev) {
                        Ok(()) => {}
                        Err(TrySendError::Full(_)) => {
                            dropped.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(TrySendError::Disconnected(_)) => return -1,
                    }
                }
                Err(e) => {
                    dropped.fetch_add(1, Ordering::Relaxed);
                    log::warn!("dropping an undecodable sample: {e}");
                }
            }
            0
        })
        .context("adding the ring buffer")?;
    let rb = builder.build().context("building the ring buffer")?;
    while !stop.load(Ordering::Relaxed) {
        // also what the kernel queued without waking us (bpf/locks.bpf.c:
        // records that are not urgent): picked up each round
        let _ = rb.consume();
        if let Err(e) = rb.poll(Duration::from_millis(100)) {
            if e.kind() == libbpf_rs::ErrorKind::Interrupted {
                continue;
            }
            // -1 from the callback: the worker is gone, we are shutting down
            if stop.load(Ordering::Relaxed) {
                break;
            }
            return Err(e).context("polling the ring buffer");
        }
    }
    let _ = rb.consume();
    Ok(())
}
