//! Where a lock's name is resolved (check 5): shared by every file class,
//! in crate::files::root.

pub use crate::files::root::Root;
