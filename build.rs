//! Compiles every `bpf/<class>.bpf.c` into a libbpf skeleton in OUT_DIR
//! (`<class>.skel.rs`, included by src/<class>/bpf.rs). A new ghost class
//! adds its .bpf.c and .h; nothing here names one.

use std::env;
use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"));
    // The programs read syscall arguments from x86_64's saved registers,
    // and only vmlinux/x86_64/vmlinux.h is committed: refuse the rest
    // plainly rather than build something that cannot load.
    match env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("x86_64") | Err(_) => {}
        Ok(other) => panic!(
            "eghostbuster builds for x86_64 only, not for {other}: the BPF programs are compiled for x86 (-D__TARGET_ARCH_x86) and read syscall arguments from x86_64's saved registers, and there is no vmlinux/{other}/vmlinux.h; build with --target x86_64-unknown-linux-gnu"
        ),
    }
    let vmlinux = PathBuf::from("vmlinux/x86_64");

    let mut objects: Vec<String> = std::fs::read_dir("bpf")
        .expect("the bpf/ directory")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".bpf.c").map(str::to_string)
        })
        .collect();
    objects.sort();
    println!("cargo:rerun-if-changed=bpf");

    // The pinned maps' layout changes with the BPF sources: pins are kept
    // per version and per this hash, so a restart only adopts its own kind.
    // Every file of bpf/: the objects' sources, their headers, and the
    // code headers they include (path_walk.h, locks_*.h).
    let mut files: Vec<PathBuf> = std::fs::read_dir("bpf")
        .expect("bpf/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut hash: u64 = 0xcbf29ce484222325;
    for f in &files {
        for b in std::fs::read(f).unwrap_or_default() {
            hash = (hash ^ b as u64).wrapping_mul(0x100000001b3);
        }
    }
    println!("cargo:rustc-env=EGHOSTBUSTER_BPF_HASH={:08x}", hash as u32);

    for name in &objects {
        let src = PathBuf::from("bpf").join(format!("{name}.bpf.c"));
        let header = PathBuf::from("bpf").join(format!("{name}.h"));
        SkeletonBuilder::new()
            .source(&src)
            .clang_args([
                "-I".into(),
                vmlinux.clone().into_os_string(),
                "-Ibpf".into(),
                "-D__TARGET_ARCH_x86".into(),
                "-Wall".into(),
            ])
            .build_and_generate(out.join(format!("{name}.skel.rs")))
            .unwrap_or_else(|e| panic!("building {}: {e:#}", src.display()));
        println!("cargo:rerun-if-changed={}", src.display());
        println!("cargo:rerun-if-changed={}", header.display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        vmlinux.join("vmlinux.h").display()
    );
}
