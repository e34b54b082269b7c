//! Compiles every `bpf/<concern>.bpf.c` into a libbpf skeleton in OUT_DIR.

use std::env;
use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

const OBJECTS: &[&str] = &["locks", "sockets"];

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"));
    let arch = match env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("x86_64") => "x86_64",
        Ok("aarch64") => "aarch64",
        Ok(other) => panic!("no vmlinux.h for target architecture {other}"),
        Err(_) => "x86_64",
    };
    let bpf_arch = match arch {
        "x86_64" => "x86",
        _ => "arm64",
    };
    let vmlinux = PathBuf::from("vmlinux").join(arch);

    // The pinned maps' layout changes with the BPF sources: pins are kept
    // per version and per this hash, so a restart only adopts its own kind.
    let mut hash: u64 = 0xcbf29ce484222325;
    for name in OBJECTS {
        for ext in ["bpf.c", "h"] {
            let bytes = std::fs::read(PathBuf::from("bpf").join(format!("{name}.{ext}")))
                .unwrap_or_default();
            for b in bytes {
                hash = (hash ^ b as u64).wrapping_mul(0x100000001b3);
            }
        }
    }
    println!("cargo:rustc-env=EGHOSTBUSTER_BPF_HASH={:08x}", hash as u32);

    for name in OBJECTS {
        let src = PathBuf::from("bpf").join(format!("{name}.bpf.c"));
        let header = PathBuf::from("bpf").join(format!("{name}.h"));
        SkeletonBuilder::new()
            .source(&src)
            .clang_args([
                "-I".into(),
                vmlinux.clone().into_os_string(),
                "-Ibpf".into(),
                format!("-D__TARGET_ARCH_{bpf_arch}").into(),
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
