//! The kernel's tables in memory, for the lock duty's unit tests.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use crate::locks::kernel::{Exit, LockKernel, LockKey, Record};

#[derive(Default)]
pub struct FakeKernel {
    pub locks: RefCell<HashMap<LockKey, Record>>,
    pub exited: RefCell<HashMap<u32, Exit>>,
    pub owners: RefCell<HashSet<u32>>,
    /// Refuse new records (a full table).
    pub full: bool,
}

impl LockKernel for FakeKernel {
    fn record(&self, key: LockKey) -> Option<Record> {
        self.locks.borrow().get(&key).cloned()
    }
    fn store(&self, key: LockKey, rec: &Record) -> bool {
        let mut l = self.locks.borrow_mut();
        if self.full && !l.contains_key(&key) {
            return false;
        }
        l.insert(key, rec.clone());
        true
    }
    fn forget(&self, key: LockKey, _fsuid: Option<u32>) {
        self.locks.borrow_mut().remove(&key);
    }
    fn keys(&self) -> Vec<LockKey> {
        self.locks.borrow().keys().copied().collect()
    }
    fn pending_exits(&self) -> Vec<Exit> {
        self.exited.borrow().values().cloned().collect()
    }
    fn exit_done(&self, tgid: u32) {
        self.exited.borrow_mut().remove(&tgid);
    }
    fn watch(&self, pid: u32) -> bool {
        self.owners.borrow_mut().insert(pid);
        true
    }
    fn counters(&self) -> Option<(u64, u64, u64)> {
        None
    }
}
