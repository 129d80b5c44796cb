//! Compiles the monitor's system call filter once, at build time, from the same list the
//! crate holds (`src/seccomp/rules.rs`, compiled into this script as well): the crate
//! embeds the finished program, so a monitor process installs it without building it
//! (which took about a tenth of a millisecond of every micro VM start).

use std::fmt::Write as _;
use std::path::PathBuf;

#[allow(dead_code)]
#[path = "src/seccomp/rules.rs"]
mod rules;

fn main() {
    println!("cargo:rerun-if-changed=src/seccomp/rules.rs");
    println!("cargo:rerun-if-changed=build.rs");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").expect("set by cargo");
    // The list's call numbers and ioctl requests are this build machine's (its libc and
    // kernel headers' crates): right only for a target of the same architecture.
    assert_eq!(
        arch,
        std::env::consts::ARCH,
        "the monitor's filter is compiled on the build machine, so it can be built only for \
         the build machine's architecture"
    );
    let program = rules::compile(&arch)
        .unwrap_or_else(|e| panic!("cannot compile the monitor's system call filter: {e}"));
    let mut source = format!(
        "/// The filter's instructions.\npub static PROGRAM: [seccompiler::sock_filter; {}] = [\n",
        program.len()
    );
    for i in &program {
        let _ = writeln!(
            source,
            "    seccompiler::sock_filter {{ code: {:#06x}, jt: {}, jf: {}, k: {:#010x} }},",
            i.code, i.jt, i.jf, i.k
        );
    }
    source.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    std::fs::write(out.join("monitor_filter.rs"), source).expect("write the compiled filter");
}
