//! Links the firmware image for its board: `linker/<board>.ld` (the board's memory) plus
//! aarch64-rt's `image.ld` (the section layout). Host builds (tests) link nothing special.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("none") {
        return;
    }
    let board = if env::var_os("CARGO_FEATURE_BOARD_BLUEFIELD").is_some() {
        "bluefield"
    } else if env::var_os("CARGO_FEATURE_BOARD_LIQUIDIO3").is_some() {
        "liquidio3"
    } else {
        "qemu-virt"
    };
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let script = manifest_dir
        .join("..")
        .join("linker")
        .join(format!("{board}.ld"));
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rustc-link-arg-bins=-Timage.ld");
    println!("cargo:rustc-link-arg-bins=-T{}", script.display());
}
