//! Records the compiler's version for `report`'s environment section (the page says which
//! rustc built the binaries that made it).
use std::process::Command;

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=L2L_RUSTC_VERSION={version}");
    println!("cargo:rerun-if-changed=build.rs");
}
