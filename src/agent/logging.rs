//! Log lines on stderr: text (env_logger's, one line per decision, names
//! escaped by the callers) or one JSON object per line. Classes log with
//! the `log` macros and key-values (`log::info!(event = "removed", path =
//! Field::path(p); "removed {}: …", Esc::path(p))`): the text format shows
//! the message only, unchanged; the JSON format adds every key-value as a
//! field of its own next to `msg`.
//!
//! The level: RUST_LOG when set (env_logger's syntax, per module), else
//! `--log-level` / `[log] level` (default info), which SIGHUP can change.
//! Our own timestamp is left out when the supervisor adds one: under
//! journald (JOURNAL_STREAM names our stderr) with `auto`, or `off`.

use std::io::Write;
use std::os::unix::fs::MetadataExt;

use crate::cli::{LogArgs, LogFormat, LogTimestamp};

/// RUST_LOG, when set, decides the filter (and a reload cannot change it).
pub fn rust_log_set() -> bool {
    std::env::var_os("RUST_LOG").is_some_and(|v| !v.is_empty())
}

/// journald sets JOURNAL_STREAM to "DEV:INO" of the stream it gave us;
/// it adds its own timestamp when stderr is still that stream.
fn under_journald() -> bool {
    let Some(v) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let Ok(m) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    dev.parse() == Ok(m.dev()) && ino.parse() == Ok(m.ino())
}

fn timestamps(when: LogTimestamp) -> bool {
    match when {
        LogTimestamp::On => true,
        LogTimestamp::Off => false,
        LogTimestamp::Auto => !under_journald(),
    }
}

/// The one-shot commands: text, RUST_LOG or info, with timestamps.
pub fn init_text() {
    init(&LogArgs {
        log_format: LogFormat::Text,
        log_level: None,
        log_timestamp: LogTimestamp::On,
    });
}

pub fn init(args: &LogArgs) {
    let ts = timestamps(args.log_timestamp);
    let mut b = if rust_log_set() {
        env_logger::Builder::from_env(env_logger::Env::default())
    } else {
        let mut b = env_logger::Builder::new();
        b.filter_level(log::LevelFilter::Trace);
        b
    };
    b.format_target(false);
    if !ts {
        b.format_timestamp(None);
    }
    if args.log_format == LogFormat::Json {
        b.format(move |buf, record| {
            let mut obj = serde_json::Map::new();
            if ts {
                obj.insert("ts".into(), buf.timestamp_millis().to_string().into());
            }
            obj.insert(
                "level".into(),
                record.level().as_str().to_ascii_lowercase().into(),
            );
            obj.insert("msg".into(), record.args().to_string().into());
            let _ = record.key_values().visit(&mut Fields(&mut obj));
            writeln!(buf, "{}", serde_json::Value::Object(obj))
        });
    }
    // a second init (tests) is no error
    if b.try_init().is_ok() && !rust_log_set() {
        log::set_max_level(args.log_level.unwrap_or(log::LevelFilter::Info));
    }
}

/// A reload's level. False when RUST_LOG decides (nothing changed).
pub fn set_level(level: Option<log::LevelFilter>) -> bool {
    if rust_log_set() {
        return false;
    }
    log::set_max_level(level.unwrap_or(log::LevelFilter::Info));
    true
}

/// Key-values into the JSON object, each through serde (a name given as
/// `host::escape::Field` keeps its exact bytes).
struct Fields<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl<'kvs> log::kv::VisitSource<'kvs> for Fields<'_> {
    fn visit_pair(
        &mut self,
        key: log::kv::Key<'kvs>,
        value: log::kv::Value<'kvs>,
    ) -> Result<(), log::kv::Error> {
        let v = serde_json::to_value(&value).unwrap_or_else(|_| value.to_string().into());
        // the fixed fields are not overwritten by a key of the same name
        if !matches!(key.as_str(), "ts" | "level" | "msg") {
            self.0.insert(key.as_str().to_string(), v);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::escape::Field;

    #[test]
    fn key_values_become_fields() {
        let mut obj = serde_json::Map::new();
        let path = std::path::Path::new("/tmp/a\nb.lock");
        let field = Field::path(path);
        let kvs: [(&str, log::kv::Value<'_>); 4] = [
            ("event", log::kv::Value::from("removed")),
            ("pid", log::kv::Value::from(42u32)),
            ("path", log::kv::ToValue::to_value(&field)),
            ("msg", log::kv::Value::from("not this")),
        ];
        log::kv::Source::visit(&kvs[..], &mut Fields(&mut obj)).unwrap();
        assert_eq!(obj["event"], "removed");
        assert_eq!(obj["pid"], 42);
        assert_eq!(obj["path"], "/tmp/a\nb.lock");
        assert!(!obj.contains_key("msg"));
    }
}
