//! Reading a class's BPF maps: its global sections (`.bss`, `.data.*`)
//! through the types libbpf-cargo generates for them (the one reader every
//! class's kernel counters go through), and a table of records by key
//! through the class's own codec.

use libbpf_rs::{MapCore, MapFlags, MapHandle};

/// A hash map of records by key, each side read and written through the
/// class's kernel contract (its key and record codecs).
pub struct Table<K, R> {
    map: MapHandle,
    key_to_bytes: fn(K) -> Vec<u8>,
    key_from_bytes: fn(&[u8]) -> Result<K, String>,
    decode: fn(&[u8]) -> Result<R, String>,
}

impl<K: Copy, R> Table<K, R> {
    pub fn new(
        map: MapHandle,
        key_to_bytes: fn(K) -> Vec<u8>,
        key_from_bytes: fn(&[u8]) -> Result<K, String>,
        decode: fn(&[u8]) -> Result<R, String>,
    ) -> Self {
        Table {
            map,
            key_to_bytes,
            key_from_bytes,
            decode,
        }
    }

    /// The record under `key`; None when there is none or it does not decode.
    pub fn get(&self, key: K) -> Option<R> {
        let bytes = self
            .map
            .lookup(&(self.key_to_bytes)(key), MapFlags::ANY)
            .ok()??;
        (self.decode)(&bytes).ok()
    }

    /// Drop the record under `key`, if any.
    pub fn delete(&self, key: K) {
        let _ = self.map.delete(&(self.key_to_bytes)(key));
    }

    /// Every record that decodes, with its key.
    pub fn entries(&self) -> Vec<(K, R)> {
        self.map
            .keys()
            .filter_map(|k| {
                let key = (self.key_from_bytes)(&k).ok()?;
                Some((key, self.get(key)?))
            })
            .collect()
    }
}

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

    fn map(kind: libbpf_rs::MapType, name: &str, value_size: u32, entries: u32) -> MapHandle {
        let opts = libbpf_rs::libbpf_sys::bpf_map_create_opts {
            sz: std::mem::size_of::<libbpf_rs::libbpf_sys::bpf_map_create_opts>() as _,
            ..Default::default()
        };
        MapHandle::create(kind, Some(name), 4, value_size, entries, &opts)
            .expect("a BPF map, as root")
    }

    #[test]
    fn a_table_reads_through_its_codecs() {
        if !privileged("creating a BPF hash map") {
            return;
        }
        let m = map(libbpf_rs::MapType::Hash, "egb_test_tab", 8, 8);
        for (k, v) in [(1u32, 10u64), (2, 20), (3, u64::MAX)] {
            m.update(&k.to_ne_bytes(), &v.to_ne_bytes(), MapFlags::ANY)
                .unwrap();
        }
        // u64::MAX stands for a record that does not decode
        let t: Table<u32, u64> = Table::new(
            m,
            |k| k.to_ne_bytes().to_vec(),
            |b| Ok(u32::from_ne_bytes(b.try_into().map_err(|_| "short key")?)),
            |b| match u64::from_ne_bytes(b.try_into().map_err(|_| "short record")?) {
                u64::MAX => Err("garbage".to_string()),
                v => Ok(v),
            },
        );
        assert_eq!(t.get(2), Some(20));
        assert_eq!(t.get(3), None);
        assert_eq!(t.get(4), None);
        let mut all = t.entries();
        all.sort();
        assert_eq!(all, vec![(1, 10), (2, 20)]);
        t.delete(1);
        t.delete(9); // nothing there: no error
        assert_eq!(t.get(1), None);
        let mut all = t.entries();
        all.sort();
        assert_eq!(all, vec![(2, 20)]);
    }

    #[test]
    fn a_real_array_map_reads_back() {
        if !privileged("creating a BPF array map") {
            return;
        }
        let map = map(libbpf_rs::MapType::Array, "egb_test_sec", 12, 1);
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
