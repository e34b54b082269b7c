//! Synchronous ring-buffer pollers: one thread per ring buffer, decoding
//! samples and handing them to the cleanup worker. Never slow work here:
//! decode, try_send, count what could not be sent.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use crossbeam_channel::{Sender, TrySendError};
use libbpf_rs::{MapCore, RingBufferBuilder};

/// Samples the poller could not use: undecodable, or the worker's queue full.
#[derive(Debug, Default)]
pub struct PollerStats {
    pub undecodable: AtomicU64,
    pub queue_full: AtomicU64,
}

/// Poll `map` until `stop` is set, sending `decode(sample)` to `tx`.
pub fn run<E, D>(
    map: &dyn MapCore,
    decode: D,
    tx: &Sender<E>,
    stop: &AtomicBool,
    stats: &PollerStats,
) -> Result<()>
where
    D: Fn(&[u8]) -> Result<E, String>,
{
    let mut builder = RingBufferBuilder::new();
    builder
        .add(map, |data: &[u8]| {
            match decode(data) {
                Ok(ev) => match tx.try_send(ev) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => {
                        stats.queue_full.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(TrySendError::Disconnected(_)) => return -1,
                },
                Err(e) => {
                    stats.undecodable.fetch_add(1, Ordering::Relaxed);
                    log::warn!("dropping an undecodable sample: {e}");
                }
            }
            0
        })
        .context("adding the ring buffer")?;
    let rb = builder.build().context("building the ring buffer")?;
    while !stop.load(Ordering::Relaxed) {
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
