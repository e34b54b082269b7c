//! The socket-file program's generated skeleton (build.rs → OUT_DIR) and
//! the `plain` impls that let samples and map values be read as the
//! record types bpf/unix_sockets.h defines.

include!(concat!(env!("OUT_DIR"), "/unix_sockets.skel.rs"));

// SAFETY: generated from the C records in bpf/unix_sockets.h: plain
// integers and byte arrays, #[repr(C)], valid for any bit pattern.
unsafe impl plain::Plain for types::uxs_key {}
unsafe impl plain::Plain for types::uxs_record {}
unsafe impl plain::Plain for types::uxs_bound {}
unsafe impl plain::Plain for types::uxs_counters {}
unsafe impl plain::Plain for types::bss {}
