//! A BPF object's global sections (`.bss`, `.data.*`) read through the
//! types libbpf-cargo generates for them: the one reader every class's
//! kernel counters go through.

use libbpf_rs::{MapCore, MapFlags, MapHandle};

/// The whole of a global-section map (one entry, key 0) as its generated
/// type `T` lays it out; None when the map cannot be read. The map's
/// value is the section's size, and `T` may be padded up to its
/// alignment: bytes the map does not have stay zero.
pub fn read_section<T: plain::Plain>(map: &MapHandle) -> Option<Box<T>> {
    let bytes = map.lookup(&0u32.to_ne_bytes(), MapFlags::ANY).ok()??;
    Some(from_section(&bytes))
}

fn from_section<T: plain::Plain>(bytes: &[u8]) -> Box<T> {
    // SAFETY: T is Plain (generated from C: integers and arrays of them),
    // so every bit pattern, all-zero included, is a valid T.
    let mut v: Box<T> = Box::new(unsafe { std::mem::zeroed() });
    // SAFETY: as above: whatever bytes are written, v stays a valid T.
    let raw = unsafe { plain::as_mut_bytes(&mut *v) };
    let n = bytes.len().min(raw.len());
    raw[..n].copy_from_slice(&bytes[..n]);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::procfs::tests::privileged;

    /// A section of 12 bytes whose type is padded to 16.
    #[repr(C)]
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct Section {
        a: u64,
        b: u32,
    }
    unsafe impl plain::Plain for Section {}

    #[test]
    fn padded_types_are_filled_from_shorter_sections() {
        let mut bytes = 7u64.to_ne_bytes().to_vec();
        bytes.extend_from_slice(&9u32.to_ne_bytes());
        assert_eq!(*from_section::<Section>(&bytes), Section { a: 7, b: 9 });
        assert_eq!(
            *from_section::<Section>(&bytes[..8]),
            Section { a: 7, b: 0 }
        );
    }

    #[test]
    fn a_real_array_map_reads_back() {
        if !privileged("creating a BPF array map") {
            return;
        }
        let opts = libbpf_rs::libbpf_sys::bpf_map_create_opts {
            sz: std::mem::size_of::<libbpf_rs::libbpf_sys::bpf_map_create_opts>() as _,
            ..Default::default()
        };
        let map = MapHandle::create(
            libbpf_rs::MapType::Array,
            Some("egb_test_sec"),
            4,
            12,
            1,
            &opts,
        )
        .expect("an array map, as root");
        let mut value = 42u64.to_ne_bytes().to_vec();
        value.extend_from_slice(&5u32.to_ne_bytes());
        map.update(&0u32.to_ne_bytes(), &value, MapFlags::ANY)
            .unwrap();
        assert_eq!(
            read_section::<Section>(&map).as_deref(),
            Some(&Section { a: 42, b: 5 })
        );
    }
}
