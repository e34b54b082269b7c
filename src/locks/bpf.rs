//! The lock programs' generated skeleton (build.rs → OUT_DIR) and the
//! `plain` impls that let samples and map values be read as the record
//! types bpf/locks.h defines.

include!(concat!(env!("OUT_DIR"), "/locks.skel.rs"));

// SAFETY: generated from the C records in bpf/locks.h: plain integers and
// byte arrays, #[repr(C)], valid for any bit pattern.
unsafe impl plain::Plain for types::lock_created {}
unsafe impl plain::Plain for types::lock_exit {}
unsafe impl plain::Plain for types::lock_name_gone {}
unsafe impl plain::Plain for types::lock_key {}
unsafe impl plain::Plain for types::lock_record {}
unsafe impl plain::Plain for types::lock_record_head {}
unsafe impl plain::Plain for types::lock_record_long {}
unsafe impl plain::Plain for types::lock_counters {}
unsafe impl plain::Plain for types::bss {}
