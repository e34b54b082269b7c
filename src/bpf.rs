//! The generated skeletons (build.rs → OUT_DIR) and the `plain` impls that
//! let ring-buffer samples be read as the record types they carry.

pub mod locks {
    include!(concat!(env!("OUT_DIR"), "/locks.skel.rs"));
}

// SAFETY: generated from the C records in bpf/locks.h: plain integers and
// byte arrays, #[repr(C)], valid for any bit pattern.
unsafe impl plain::Plain for locks::types::lock_created {}
unsafe impl plain::Plain for locks::types::lock_exit {}
unsafe impl plain::Plain for locks::types::lock_name_gone {}
unsafe impl plain::Plain for locks::types::lock_key {}
unsafe impl plain::Plain for locks::types::lock_record {}
unsafe impl plain::Plain for locks::types::lock_counters {}
unsafe impl plain::Plain for locks::types::bss {}

pub mod sockets {
    include!(concat!(env!("OUT_DIR"), "/sockets.skel.rs"));
}

// SAFETY: generated from the C records in bpf/sockets.h, as above.
unsafe impl plain::Plain for sockets::types::sock_event {}
unsafe impl plain::Plain for sockets::types::sock_reap {}
unsafe impl plain::Plain for sockets::types::sock_counters {}
