#!/usr/bin/env bash
# Print the package's machine-readable copyright file (DEP-5) on stdout:
# eghostbuster itself, the C libraries linked into the static binary
# (libbpf from the libbpf-sys crate, libelf and zlib from Debian's -dev
# packages) and every crate of Cargo.lock: those compiled into the binary
# get a stanza with their copyright lines and licence; build- and test-only
# crates, and crates for other platforms, are named in a comment.
#
# Offline: `cargo metadata --offline` and the crates' own sources in the
# cargo registry (present once the release binary is built), and the
# copyright files of the Debian packages that provided libelf and zlib.
# Fails when a licence or its text cannot be found.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d "$HOME/.cargo/bin" ] && PATH="$HOME/.cargo/bin:$PATH"
target=x86_64-unknown-linux-gnu

meta=$(mktemp)
trap 'rm -f "$meta"' EXIT
cargo metadata --offline --locked --format-version 1 --filter-platform "$target" >"$meta"
zlib_version=$(dpkg-query -W -f '${Version}' zlib1g-dev)
elf_version=$(dpkg-query -W -f '${Version}' libelf-dev)

TARGET=$target ZLIB_VERSION=$zlib_version ELF_VERSION=$elf_version \
    /usr/bin/python3 - "$meta" Cargo.lock <<'PY'
import json, os, re, sys, tomllib
from pathlib import Path

meta = json.load(open(sys.argv[1]))
lock = tomllib.load(open(sys.argv[2], "rb"))
pkgs = {p["id"]: p for p in meta["packages"]}
nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
root = meta["resolve"]["root"]

def die(msg):
    print(f"gen-copyright: {msg}", file=sys.stderr)
    sys.exit(1)

def is_proc_macro(p):
    return any("proc-macro" in t["kind"] for t in p["targets"])

# Compiled into the binary: reachable from the root through normal
# dependencies, not through proc-macros (they run in the compiler).
embedded, todo = set(), [root]
while todo:
    i = todo.pop()
    if i in embedded:
        continue
    embedded.add(i)
    for d in nodes[i]["deps"]:
        if any(k["kind"] is None for k in d["dep_kinds"]) and not is_proc_macro(pkgs[d["pkg"]]):
            todo.append(d["pkg"])
embedded.discard(root)
by_key = {(p["name"], p["version"]): p for p in meta["packages"]}

def dep5_expr(spdx):
    e = spdx.replace("/", " OR ")
    e = re.sub(r"\bOR\b", "or", e)
    e = re.sub(r"\bAND\b", "and", e)
    e = re.sub(r"\bWITH\b", "with", e)
    e = e.replace("-only", "")
    return " ".join(e.split())

def licence_ids(expr):
    return [t for t in re.split(r"[\s()]+", expr) if t and t not in ("or", "and", "with")]

COPYRIGHT_RE = re.compile(
    r"^\s*(?:copyright\s*(?:\(c\)|©)|copyright\b.*\d{4}|\(c\)\s*\d{4}|©)", re.I)
TEMPLATE_RE = re.compile(r"\[yyyy\]|\{yyyy\}|<year>|\[name of|copyright owner\]", re.I)

def licence_files(d):
    return sorted(f for f in d.iterdir()
                  if f.is_file() and re.match(r"(?i)(licen[cs]e|copying|unlicense|notice)", f.name))

def copyright_lines(p):
    d = Path(p["manifest_path"]).parent
    lines = []
    for f in licence_files(d):
        for l in f.read_text(errors="replace").splitlines():
            l = l.strip()
            if COPYRIGHT_RE.match(l) and not TEMPLATE_RE.search(l) and l not in lines:
                lines.append(l)
    if not lines:
        authors = [re.sub(r"\s*<[^>]*>", "", a).strip() for a in p.get("authors") or []]
        lines = [", ".join(a for a in authors if a) or f"the {p['name']} authors"]
    return lines

# Texts of the licences that /usr/share/common-licenses lacks, from the
# crates that use them (first found wins: the text is the same).
COMMON = {"Apache-2.0": "Apache-2.0", "GPL-2": "GPL-2", "GPL-2+": "GPL-2",
          "LGPL-2.1": "LGPL-2.1", "LGPL-3+": "LGPL-3", "MPL-2.0": "MPL-2.0",
          "CC0-1.0": "CC0-1.0"}
START = {"MIT": "Permission is hereby granted",
         "Unlicense": "This is free and unencumbered software",
         "BSD-2-Clause": "Redistribution and use in source and binary forms",
         "BSD-3-Clause": "Redistribution and use in source and binary forms",
         "Unicode-3.0": "UNICODE LICENSE V3",
         "ISC": "Permission to use, copy, modify",
         "BSL-1.0": "Boost Software License - Version 1.0",
         "LLVM-exception": "LLVM Exceptions to the Apache 2.0 License"}
texts = {}

NAME_HINT = {"MIT": "MIT", "Unlicense": "UNLICENSE", "BSD-2-Clause": "BSD",
             "BSD-3-Clause": "BSD", "Unicode-3.0": "UNICODE", "ISC": "ISC",
             "BSL-1.0": "BOOST", "LLVM-exception": "LLVM-EXCEPTION"}

def find_text(lid, dirs):
    """The text of licence LID from the first crate directory that has it:
    a file named for it (LICENSE-MIT, UNLICENSE, ...), else the crate's
    only licence file."""
    if lid in texts or lid in COMMON or lid not in START:
        return
    for d in dirs:
        files = licence_files(d)
        named = [f for f in files if NAME_HINT[lid] in f.name.upper()]
        for f in named or (files if len(files) == 1 else []):
            body = f.read_text(errors="replace")
            i = body.find(START[lid])
            if i >= 0:
                texts[lid] = body[i:].strip()
                return

def fmt_text(t):
    out = []
    for l in t.splitlines():
        l = l.rstrip()
        out.append(" " + l if l else " .")
    return "\n".join(out)

def debian_paragraphs(path):
    return [p.strip("\n") for p in Path(path).read_text().split("\n\n") if p.strip()]

def field(par, name):
    m = re.search(rf"^{name}:[ \t]*(.*(?:\n[ \t].*)*)", par, re.M)
    return m.group(1) if m else None

out = []
out.append("""Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: eghostbuster
Upstream-Contact: eghostbuster developers <dev@eghostbuster.org>
Comment: /usr/sbin/eghostbuster is one static binary. Besides eghostbuster's
 own code it contains libbpf (built from the libbpf-sys crate), libelf and
 zlib (linked from Debian's packages), and the Rust crates of Cargo.lock that
 are compiled into it for {target}; each has a stanza below, named
 crates/NAME-VERSION. Generated by scripts/gen-copyright.sh.""".format(target=os.environ["TARGET"]))

# build- and test-only crates, and other platforms' crates
other_lines = []
for pk in sorted(lock["package"], key=lambda p: (p["name"], p["version"])):
    key = (pk["name"], pk["version"])
    p = by_key.get(key)
    if p and p["id"] == root:
        continue
    if p and p["id"] in embedded:
        continue
    if p:
        why = dep5_expr(p["license"] or "licence unknown")
        other_lines.append(f"{pk['name']}-{pk['version']} ({why})")
    else:
        other_lines.append(f"{pk['name']}-{pk['version']} (not built for {os.environ['TARGET']} with these features)")
out[-1] += ("\n .\n Crates in Cargo.lock that are not in the binary (used to build or test"
            " it, or for other platforms):\n " + ",\n ".join(other_lines) + ".")

out.append("""Files: *
Copyright: 2026 The eghostbuster developers
License: GPL-2""")

used = {"GPL-2"}
crates = sorted((pkgs[i] for i in embedded), key=lambda p: (p["name"], p["version"]))
libbpf_sys = next((p for p in crates if p["name"] == "libbpf-sys"), None)
if not libbpf_sys:
    die("libbpf-sys is not among the embedded crates")

# libbpf, as bundled by libbpf-sys
lb = Path(libbpf_sys["manifest_path"]).parent / "libbpf"
lb_lic = (lb / "LICENSE").read_text().strip()
lb_copy = []
for f in sorted((lb / "src").glob("*.[ch]")):
    for l in f.read_text(errors="replace").splitlines():
        m = re.match(r"^\s*(?:/?\*|//)\s*(Copyright.*\d{4}.*?)\s*(?:\*/)?$", l)
        if m and m.group(1) not in lb_copy:
            lb_copy.append(m.group(1))
if not lb_copy:
    die("no copyright lines found in libbpf's sources")
lb_expr = dep5_expr(lb_lic)
used.update(licence_ids(lb_expr))
out.append(f"Files: libbpf/*\nCopyright: " + "\n           ".join(lb_copy) +
           f"\nLicense: {lb_expr}\nComment: libbpf {libbpf_sys['version'].split('+v')[-1]},"
           " bundled by the libbpf-sys crate and linked statically.")
find_text("BSD-2-Clause", [lb])

# libelf from Debian's elfutils
pars = debian_paragraphs("/usr/share/doc/libelf-dev/copyright")
elf = next((p for p in pars if field(p, "Files") and "lib*" in field(p, "Files")), None)
if not elf:
    die("no libelf stanza in /usr/share/doc/libelf-dev/copyright")
elf_copy = field(elf, "Copyright")
elf_lic = field(elf, "License")
elf_expr = elf_lic.splitlines()[0].strip()
out.append(f"Files: elfutils/libelf/*\nCopyright: {elf_copy}\nLicense: {elf_expr}\n" +
           "\n".join(elf_lic.splitlines()[1:]) +
           f"\nComment: libelf from elfutils {os.environ['ELF_VERSION']} (Debian's libelf-dev),"
           "\n linked statically. The GPL-2 and LGPL-3 texts are in /usr/share/common-licenses.")

# zlib from Debian
pars = debian_paragraphs("/usr/share/doc/zlib1g/copyright")
z = next((p for p in pars if field(p, "Files") == "*"), None)
zl = next((p for p in pars if p.startswith("License: Zlib")), None)
if not z or not zl:
    die("no zlib stanza in /usr/share/doc/zlib1g/copyright")
out.append(f"Files: zlib/*\nCopyright: {field(z, 'Copyright')}\n{zl}"
           f"\nComment: zlib {os.environ['ZLIB_VERSION']} (Debian's zlib1g-dev), linked statically.")

dirs = [Path(p["manifest_path"]).parent for p in crates]
for p in crates:
    if not p.get("license"):
        die(f"crate {p['name']} {p['version']} declares no licence")
    expr = dep5_expr(p["license"])
    ids = licence_ids(expr)
    used.update(ids)
    for lid in ids:
        find_text(lid, [Path(p["manifest_path"]).parent] + dirs)
    out.append(f"Files: crates/{p['name']}-{p['version']}/*\nCopyright: " +
               "\n           ".join(copyright_lines(p)) + f"\nLicense: {expr}")

for lid in sorted(used):
    if lid in ("LGPL-3+", "GPL-2+"):
        continue  # libelf's stanza carries its text
    if lid in COMMON:
        out.append(f"License: {lid}\n On Debian systems, the complete text of this licence can be"
                   f" found in\n /usr/share/common-licenses/{COMMON[lid]}.")
    elif lid in texts:
        out.append(f"License: {lid}\n" + fmt_text(texts[lid]))
    elif lid == "Zlib":
        continue  # given with zlib's stanza
    else:
        die(f"no text found for the licence {lid}")

print("\n\n".join(out))
PY
