//! Man pages, generated from the command line definition: eghostbuster(8)
//! and one page per subcommand, eghostbuster-run(8) and so on. clap_mangen
//! renders what the definition knows (name, synopsis, description,
//! options); this module adds what it does not (exit status, environment,
//! files, examples, see also) and the list of commands, so that every page
//! a page names is one that is shipped.
//!
//! `text.rs` holds that text, per command; this file renders the pages.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::CommandFactory;

use crate::cli::Cli;

/// Section 8: system administration commands (the agent runs as root).
pub const SECTION: &str = "8";

/// One man page: its name (without section) and its roff source.
pub struct Page {
    pub name: String,
    pub roff: Vec<u8>,
}

mod text;

use text::{extra, ENVIRONMENT};

/// The roff of a list of (tag, text) items.
fn tagged(out: &mut Vec<u8>, heading: &str, items: &[(&str, &str)]) {
    if items.is_empty() {
        return;
    }
    if heading.contains(' ') {
        let _ = writeln!(out, ".SH \"{heading}\"");
    } else {
        let _ = writeln!(out, ".SH {heading}");
    }
    for (tag, text) in items {
        let _ = writeln!(out, ".TP\n{tag}\n{text}");
    }
}

fn page_ref(name: &str) -> String {
    format!("\\fB{}\\fR({SECTION})", name.replace('-', "\\-"))
}

/// Every page: eghostbuster(8) first, then one per visible subcommand.
pub fn pages() -> io::Result<Vec<Page>> {
    let mut app = Cli::command().disable_help_subcommand(true);
    app.build();
    let subs: Vec<clap::Command> = app
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    let names: Vec<String> = std::iter::once("eghostbuster".to_string())
        .chain(
            subs.iter()
                .map(|s| format!("eghostbuster-{}", s.get_name())),
        )
        .collect();

    let mut pages = Vec::new();
    let mut main = Vec::new();
    let man = clap_mangen::Man::new(app.clone())
        .section(SECTION)
        .manual("System Administration");
    man.render_title(&mut main)?;
    man.render_name_section(&mut main)?;
    man.render_synopsis_section(&mut main)?;
    man.render_description_section(&mut main)?;
    finish(&mut main, "eghostbuster", &names, Some(&subs))?;
    pages.push(Page {
        name: "eghostbuster".into(),
        roff: main,
    });

    for sub in subs {
        let short = sub.get_name().to_string();
        let name = format!("eghostbuster-{short}");
        let cmd = sub
            .clone()
            .display_name(name.clone())
            .bin_name(format!("eghostbuster {short}"));
        let man = clap_mangen::Man::new(cmd.clone())
            .section(SECTION)
            .manual("System Administration")
            .source(format!("eghostbuster {}", env!("CARGO_PKG_VERSION")));
        let mut buf = Vec::new();
        man.render_title(&mut buf)?;
        man.render_name_section(&mut buf)?;
        man.render_synopsis_section(&mut buf)?;
        man.render_description_section(&mut buf)?;
        let e = extra(&short);
        if !e.description.is_empty() {
            writeln!(buf, ".PP\n{}", e.description)?;
        }
        if cmd.get_arguments().any(|a| !a.is_hide_set()) {
            man.render_options_section(&mut buf)?;
        }
        finish(&mut buf, &short, &names, None)?;
        pages.push(Page { name, roff: buf });
    }
    Ok(pages)
}

/// The sections after the options: COMMANDS (main page only), EXIT STATUS,
/// ENVIRONMENT, FILES, EXAMPLES, SEE ALSO.
fn finish(
    buf: &mut Vec<u8>,
    which: &str,
    names: &[String],
    subs: Option<&[clap::Command]>,
) -> io::Result<()> {
    let e = extra(which);
    if let Some(subs) = subs {
        if !e.description.is_empty() {
            writeln!(buf, ".PP\n{}", e.description)?;
        }
        writeln!(buf, ".SH COMMANDS")?;
        for s in subs {
            let about = s.get_about().map(|a| a.to_string()).unwrap_or_default();
            writeln!(
                buf,
                ".TP\n{}\n{}",
                page_ref(&format!("eghostbuster-{}", s.get_name())),
                about.replace('-', "\\-")
            )?;
        }
        writeln!(
            buf,
            ".PP\n\\fBeghostbuster \\-\\-help\\fR and \\fBeghostbuster\\fR \\fICOMMAND\\fR \\fB\\-\\-help\\fR print the same options."
        )?;
    }
    tagged(buf, "EXIT STATUS", e.exit);
    writeln!(buf, ".SH ENVIRONMENT\n{ENVIRONMENT}")?;
    tagged(buf, "FILES", e.files);
    if !e.examples.is_empty() {
        writeln!(buf, ".SH EXAMPLES")?;
        for (what, cmd) in e.examples {
            writeln!(buf, ".PP\n{what}\n.PP\n.RS\n.EX\n{cmd}\n.EE\n.RE")?;
        }
    }
    let mut see: Vec<String> = names
        .iter()
        .filter(|n| {
            let n = n.as_str();
            n != which && n != format!("eghostbuster-{which}")
        })
        .map(|n| page_ref(n))
        .collect();
    see.extend(e.see_also.iter().map(|r| {
        let (name, sec) = r.split_once('(').unwrap_or((r, ""));
        format!("\\fB{}\\fR({sec}", name.replace('-', "\\-"))
    }));
    writeln!(buf, ".SH \"SEE ALSO\"\n{}", see.join(",\n"))?;
    Ok(())
}

/// `eghostbuster manpage DIR`: write every page to DIR/NAME.8 and print
/// the paths written, one a line.
pub fn write_all(dir: &Path, out: &mut dyn Write) -> io::Result<()> {
    let mut written: Vec<PathBuf> = Vec::new();
    for page in pages()? {
        let path = dir.join(format!("{}.{SECTION}", page.name));
        std::fs::write(&path, &page.roff)?;
        written.push(path);
    }
    for p in written {
        writeln!(out, "{}", p.display())?;
    }
    Ok(())
}

/// The pages that a roff text names, as "name(section)", its font escapes
/// and `\-` undone.
#[cfg(test)]
fn references(roff: &str) -> Vec<String> {
    let plain = roff
        .replace("\\fB", "")
        .replace("\\fR", "")
        .replace("\\fI", "")
        .replace("\\-", "-");
    let mut refs = Vec::new();
    let bytes = plain.as_bytes();
    for (i, _) in plain.match_indices('(') {
        let close = match plain[i..].find(')') {
            Some(c) => i + c,
            None => continue,
        };
        let sec = &plain[i + 1..close];
        if sec.len() != 1 || !sec.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let mut start = i;
        while start > 0 {
            let c = bytes[start - 1];
            if c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.' {
                start -= 1;
            } else {
                break;
            }
        }
        if start < i {
            refs.push(plain[start..=close].to_string());
        }
    }
    refs
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn all() -> Vec<(String, String)> {
        pages()
            .unwrap()
            .into_iter()
            .map(|p| (p.name, String::from_utf8(p.roff).unwrap()))
            .collect()
    }

    #[test]
    fn one_page_per_visible_subcommand() {
        let names: Vec<String> = all().into_iter().map(|(n, _)| n).collect();
        for want in [
            "eghostbuster",
            "eghostbuster-run",
            "eghostbuster-sweep",
            "eghostbuster-status",
            "eghostbuster-unpin",
            "eghostbuster-completions",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
        }
        assert!(!names
            .iter()
            .any(|n| n.ends_with("-manpage") || n.ends_with("-help")));
    }

    #[test]
    fn every_referenced_page_is_shipped_or_external() {
        let pages = all();
        let shipped: Vec<String> = pages.iter().map(|(n, _)| format!("{n}(8)")).collect();
        // other packages' pages that the text may name
        let external = [
            "runsv(8)",
            "sv(8)",
            "svlogd(8)",
            "systemctl(1)",
            "crontab(5)",
            "systemd.timer(5)",
        ];
        for (name, roff) in &pages {
            let refs = references(roff);
            assert!(!refs.is_empty(), "{name} names no page");
            for r in refs {
                assert!(
                    shipped.contains(&r) || external.contains(&r.as_str()),
                    "{name} refers to {r}, which is not shipped"
                );
            }
        }
        // the main page leads to every other page
        let main = &pages[0].1;
        let refs = references(main);
        for s in &shipped[1..] {
            assert!(refs.contains(s), "eghostbuster(8) does not name {s}");
        }
    }

    #[test]
    fn sections_present() {
        for (name, roff) in all() {
            for sec in [
                ".SH NAME",
                ".SH SYNOPSIS",
                ".SH DESCRIPTION",
                ".SH \"EXIT STATUS\"",
                ".SH ENVIRONMENT",
                ".SH FILES",
                ".SH EXAMPLES",
                ".SH \"SEE ALSO\"",
            ] {
                assert!(roff.contains(sec), "{name}: no {sec}");
            }
            assert!(roff.contains("RUST_LOG"), "{name}: RUST_LOG");
            assert!(
                roff.contains("EGHOSTBUSTER_OPTS"),
                "{name}: EGHOSTBUSTER_OPTS"
            );
            if name != "eghostbuster" {
                assert!(roff.contains(".SH OPTIONS"), "{name}: no options");
            }
        }
        let status = all()
            .into_iter()
            .find(|(n, _)| n == "eghostbuster-status")
            .unwrap()
            .1;
        assert!(status.contains(".TP\n3\n"), "status: exit 3 undocumented");
        let run = all()
            .into_iter()
            .find(|(n, _)| n == "eghostbuster-run")
            .unwrap()
            .1;
        for opt in [
            "pin\\-dir",
            "close\\-wait\\-timeout",
            "metrics\\-listen",
            "dry\\-run",
        ] {
            assert!(run.contains(opt), "run: {opt} not documented");
        }
    }

    /// man-db renders every page with groff's warnings on, as lintian
    /// does: no warning may come out.
    #[test]
    fn pages_render_without_warnings() {
        let dir = tempfile::tempdir().unwrap();
        let mut listing = Vec::new();
        write_all(dir.path(), &mut listing).unwrap();
        let listing = String::from_utf8(listing).unwrap();
        assert_eq!(listing.lines().count(), all().len());
        for path in listing.lines() {
            let out = Command::new("man")
                .args(["--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", path])
                .env("LC_ALL", "C.UTF-8")
                .env("MANROFFSEQ", "")
                .env("MANWIDTH", "80")
                .output()
                .expect("man (man-db) must be installed: scripts/deps.sh installs it");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{path}: man failed: {err}");
            assert!(err.trim().is_empty(), "{path}: warnings:\n{err}");
            assert!(!out.stdout.is_empty(), "{path}: rendered nothing");
        }
    }
}
