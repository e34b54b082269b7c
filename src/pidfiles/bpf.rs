//! The PID-file programs' generated skeleton (build.rs → OUT_DIR) and the
//! `plain` impls that let samples and map values be read as the record
//! types bpf/pidfiles.h defines.

include!(concat!(env!("OUT_DIR"), "/pidfiles.skel.rs"));

// SAFETY: generated from the C records in bpf/pidfiles.h: plain integers
// and byte arrays, #[repr(C)], valid for any bit pattern.
unsafe impl plain::Plain for types::pidf_key {}
unsafe impl plain::Plain for types::pidf_record {}
unsafe impl plain::Plain for types::pidf_written {}
unsafe impl plain::Plain for types::pidf_counters {}
unsafe impl plain::Plain for types::bss {}
