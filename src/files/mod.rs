//! What every filesystem ghost class shares: names resolved without
//! following symlinks and acted on relative to a directory descriptor
//! (`dir`), the pure checks (`verdict`), and the batch holder checks with
//! the atomic removal (`removal`).

pub mod dir;
pub mod removal;
pub mod verdict;
