//! Names from the kernel or from users (paths, process names) are bytes
//! that may hold anything: newlines, escape sequences, invalid UTF-8. In
//! every text output (log lines, `sweep` stdout, `status`, metric labels)
//! they are written through [`Esc`], so that one decision is exactly one
//! line, nothing reaches a terminal as a control sequence, and the exact
//! bytes can be recovered: `\\` for a backslash, `\n`, `\t`, `\r`, and
//! `\xNN` for every other control byte, DEL, and each byte of an invalid
//! UTF-8 sequence. Valid UTF-8 text (other than those) is written as is.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Display `bytes` escaped.
#[derive(Clone, Copy)]
pub struct Esc<'a>(pub &'a [u8]);

impl<'a> Esc<'a> {
    pub fn path(p: &'a Path) -> Self {
        Esc(p.as_os_str().as_bytes())
    }

    pub fn os(s: &'a OsStr) -> Self {
        Esc(s.as_bytes())
    }

    pub fn str(s: &'a str) -> Self {
        Esc(s.as_bytes())
    }
}

fn escape_char(c: char, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match c {
        '\\' => f.write_str("\\\\"),
        '\n' => f.write_str("\\n"),
        '\t' => f.write_str("\\t"),
        '\r' => f.write_str("\\r"),
        c if (c as u32) < 0x20 || c as u32 == 0x7f => write!(f, "\\x{:02x}", c as u32),
        // C1 controls (U+0080..U+009F) act as escapes on some terminals
        c if (0x80..0xa0).contains(&(c as u32)) => {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                write!(f, "\\x{b:02x}")?;
            }
            Ok(())
        }
        c => write!(f, "{c}"),
    }
}

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                escape_char(c, f)?;
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// A name as a structured log field (`path = Field::path(p)`): in JSON
/// logs the exact string when the bytes are valid UTF-8 (JSON's own
/// escaping keeps control characters), otherwise an array of the bytes
/// (numbers 0-255), so the exact name is always recoverable; shown
/// escaped ([`Esc`]) wherever it is formatted as text.
#[derive(Clone, Copy)]
pub struct Field<'a>(pub &'a [u8]);

impl<'a> Field<'a> {
    pub fn path(p: &'a Path) -> Self {
        Field(p.as_os_str().as_bytes())
    }

    pub fn str(s: &'a str) -> Self {
        Field(s.as_bytes())
    }
}

impl serde::Serialize for Field<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(self.0) {
            Ok(text) => s.serialize_str(text),
            Err(_) => s.collect_seq(self.0.iter()),
        }
    }
}

impl fmt::Display for Field<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Esc(self.0).fmt(f)
    }
}

impl log::kv::ToValue for Field<'_> {
    fn to_value(&self) -> log::kv::Value<'_> {
        log::kv::Value::from_serde(self)
    }
}

/// The inverse of [`Esc`], for tests and for tools that read our output.
pub fn unescape(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        match *b.get(i + 1)? {
            b'\\' => out.push(b'\\'),
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'x' => {
                let hex = std::str::from_utf8(b.get(i + 2..i + 4)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            _ => return None,
        }
        i += 2;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_and_reversible() {
        let cases: [&[u8]; 6] = [
            b"plain/path.lock",
            b"x\n[fake] removed /etc/shadow\n.lock",
            b"esc\x1b[31mred\x07",
            b"back\\slash\ttab\rcr",
            "caf\u{e9} \u{85}next".as_bytes(),
            b"bad\xff\xfe utf8 \xe2\x82",
        ];
        for raw in cases {
            let text = Esc(raw).to_string();
            assert!(
                !text.bytes().any(|b| b < 0x20 || b == 0x7f),
                "control byte left in {text:?}"
            );
            assert!(!text.contains('\u{85}'), "C1 control left in {text:?}");
            assert_eq!(unescape(&text).as_deref(), Some(raw), "{text}");
        }
        assert_eq!(Esc(b"a\nb").to_string(), "a\\nb");
        assert_eq!(Esc(b"\xff").to_string(), "\\xff");
        assert_eq!(Esc("caf\u{e9}".as_bytes()).to_string(), "caf\u{e9}");
        assert_eq!(Esc::path(Path::new("/tmp/a b")).to_string(), "/tmp/a b");
    }

    #[test]
    fn fields_are_lossless_in_json() {
        let utf8 = serde_json::to_string(&Field(b"a\nb \x1b.lock")).unwrap();
        assert_eq!(utf8, r#""a\nb \u001b.lock""#);
        assert_eq!(
            serde_json::from_str::<String>(&utf8).unwrap().as_bytes(),
            b"a\nb \x1b.lock"
        );
        let raw = serde_json::to_string(&Field(b"x\xff.lock")).unwrap();
        assert_eq!(raw, "[120,255,46,108,111,99,107]");
        assert_eq!(Field(b"x\xff").to_string(), "x\\xff");
    }
}
