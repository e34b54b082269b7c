//! What every filesystem ghost class shares: names resolved without
//! following symlinks and acted on relative to a directory descriptor
//! (`dir`), in the creator's mount namespace (`root`), which names a class
//! acts on (`names`), the pure checks (`verdict`), the creator's
//! credentials (`creator`), the processes whose exit a file waits for
//! (`owners`), who holds a file (`holders`: BPF iterators or the /proc
//! walk), and the batch checks with the atomic removal (`removal`).

pub mod creator;
pub mod dir;
pub mod holders;
pub mod identity;
pub mod intents;
pub mod made;
pub mod names;
pub mod owners;
pub mod removal;
pub mod root;
pub mod verdict;
pub mod walk;
