//! The socket programs' generated skeleton (build.rs → OUT_DIR) and the
//! `plain` impls for the records bpf/sockets.h defines.

include!(concat!(env!("OUT_DIR"), "/sockets.skel.rs"));

// SAFETY: generated from the C records in bpf/sockets.h: plain integers
// and byte arrays, #[repr(C)], valid for any bit pattern.
unsafe impl plain::Plain for types::sock_event {}
unsafe impl plain::Plain for types::sock_reap {}
unsafe impl plain::Plain for types::sock_counters {}
unsafe impl plain::Plain for types::bss {}
unsafe impl plain::Plain for types::sock_facts {}
unsafe impl plain::Plain for types::data_scope {}
