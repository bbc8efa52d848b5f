//! Firmware images: building one per board (`cargo xtask build-fw`) into `target/firmware/<board>/`
//! with a manifest, and loading an image back with every check `cargo xtask flash` makes.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use object::elf::PT_LOAD;
use object::read::elf::{ElfFile64, FileHeader, ProgramHeader};
use object::Endianness;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::workspace_root;

/// The Rust target every board's image is built for.
pub const TARGET: &str = "aarch64-unknown-none";
/// File names inside `target/firmware/<board>/`.
pub const ELF_NAME: &str = "nic-firmware.elf";
/// The raw binary (what a boot loader copies to the load address).
pub const BIN_NAME: &str = "nic-firmware.bin";
/// The manifest.
pub const MANIFEST_NAME: &str = "manifest.json";

/// A board the firmware is built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Board {
    /// `qemu-system-aarch64 -M virt`: the emulated SmartNIC.
    QemuVirt,
    /// NVIDIA BlueField (build target; boot stream through rshim).
    Bluefield,
    /// Marvell LiquidIO III (build target; image handed to the card's U-Boot over TFTP).
    Liquidio3,
}

impl Board {
    /// Every board.
    pub const ALL: [Board; 3] = [Board::QemuVirt, Board::Bluefield, Board::Liquidio3];

    /// The name used on the command line, in paths and in manifests.
    pub const fn name(self) -> &'static str {
        match self {
            Board::QemuVirt => "qemu-virt",
            Board::Bluefield => "bluefield",
            Board::Liquidio3 => "liquidio3",
        }
    }

    /// The nic-firmware cargo feature that selects the board (none for qemu-virt).
    pub const fn feature(self) -> Option<&'static str> {
        match self {
            Board::QemuVirt => None,
            Board::Bluefield => Some("board-bluefield"),
            Board::Liquidio3 => Some("board-liquidio3"),
        }
    }

    /// Where the board's images go.
    pub fn output_dir(self) -> PathBuf {
        workspace_root()
            .join("target")
            .join("firmware")
            .join(self.name())
    }
}

impl fmt::Display for Board {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Board {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Board> {
        Board::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .with_context(|| {
                format!("unknown board `{s}` (boards: qemu-virt, bluefield, liquidio3)")
            })
    }
}

/// What `build-fw` writes beside the image, and what `flash` checks before using it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The board the image was linked for.
    pub board: Board,
    /// nic-firmware's version.
    pub version: String,
    /// `git describe`-style revision of the tree it was built from (`-dirty` if modified).
    pub git_revision: String,
    /// The ELF file's name.
    pub elf: String,
    /// SHA-256 of the ELF file, hex.
    pub elf_sha256: String,
    /// The raw binary's name.
    pub bin: String,
    /// Size of the raw binary in bytes.
    pub size: u64,
    /// SHA-256 of the raw binary, hex.
    pub sha256: String,
    /// Address the raw binary is loaded at.
    pub load_address: u64,
    /// Entry point.
    pub entry: u64,
}

impl Manifest {
    /// The manifest of an ELF image, and its raw binary.
    pub fn describe(board: Board, git_revision: String, elf: &[u8]) -> Result<(Manifest, Vec<u8>)> {
        let (load_address, entry, bin) = raw_binary(elf)?;
        let manifest = Manifest {
            board,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            git_revision,
            elf: ELF_NAME.to_owned(),
            elf_sha256: sha256_hex(elf),
            bin: BIN_NAME.to_owned(),
            size: bin.len() as u64,
            sha256: sha256_hex(&bin),
            load_address,
            entry,
        };
        Ok((manifest, bin))
    }
}

/// A built image, checked against its manifest.
#[derive(Clone, Debug)]
pub struct Image {
    /// The manifest.
    pub manifest: Manifest,
    /// The ELF file (what QEMU boots).
    pub elf: PathBuf,
    /// The raw binary (what real boards load).
    pub bin: PathBuf,
}

/// Builds the image for `board` and writes ELF, raw binary and manifest.
pub fn build(board: Board) -> Result<Image> {
    let revision = git_revision();
    let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo
        .current_dir(workspace_root())
        .env("E3_GIT_REVISION", &revision)
        .args([
            "build",
            "--package",
            "nic-firmware",
            "--bin",
            "nic-firmware",
        ])
        .args(["--target", TARGET, "--release"]);
    if let Some(feature) = board.feature() {
        cargo.args(["--features", feature]);
    }
    let status = cargo.status().context("could not run cargo")?;
    if !status.success() {
        bail!("building the {board} firmware failed ({status})");
    }
    let built = workspace_root()
        .join("target")
        .join(TARGET)
        .join("release")
        .join("nic-firmware");
    let elf_bytes = fs::read(&built).with_context(|| format!("reading {}", built.display()))?;
    let dir = board.output_dir();
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let (manifest, bin_bytes) = Manifest::describe(board, revision, &elf_bytes)?;
    write(&dir.join(ELF_NAME), &elf_bytes)?;
    write(&dir.join(BIN_NAME), &bin_bytes)?;
    let json = serde_json::to_string_pretty(&manifest)? + "\n";
    write(&dir.join(MANIFEST_NAME), json.as_bytes())?;
    Ok(Image {
        manifest,
        elf: dir.join(ELF_NAME),
        bin: dir.join(BIN_NAME),
    })
}

/// Loads the image in `dir` for `board`, refusing it if the manifest is missing or unreadable,
/// names another board, or a checksum or size does not match the files.
pub fn load(dir: &Path, board: Board) -> Result<Image> {
    let manifest_path = dir.join(MANIFEST_NAME);
    let text = fs::read_to_string(&manifest_path).with_context(|| {
        format!(
            "no firmware manifest at {} (build the image with `cargo xtask build-fw --board {board}`)",
            manifest_path.display()
        )
    })?;
    let manifest: Manifest = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a firmware manifest", manifest_path.display()))?;
    if manifest.board != board {
        bail!(
            "refusing to flash: the image in {} was built for {}, not {board}",
            dir.display(),
            manifest.board
        );
    }
    let check = |name: &str, expected: &str, size: Option<u64>| -> Result<PathBuf> {
        if name.contains('/') || name.contains("..") {
            bail!("refusing to flash: the manifest names a file outside its directory: {name}");
        }
        let path = dir.join(name);
        let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        if let Some(size) = size.filter(|&s| s != bytes.len() as u64) {
            bail!(
                "refusing to flash: {} is {} bytes, the manifest says {size}",
                path.display(),
                bytes.len()
            );
        }
        let actual = sha256_hex(&bytes);
        if actual != expected {
            bail!(
                "refusing to flash: {} has SHA-256 {actual}, the manifest says {expected} \
                 (the image was changed after it was built)",
                path.display()
            );
        }
        Ok(path)
    };
    let elf = check(&manifest.elf, &manifest.elf_sha256, None)?;
    let bin = check(&manifest.bin, &manifest.sha256, Some(manifest.size))?;
    Ok(Image { manifest, elf, bin })
}

/// The bytes of every loadable segment laid out from the lowest physical address (what
/// `objcopy -O binary` makes): returns the load address, the entry point and the bytes.
pub fn raw_binary(elf: &[u8]) -> Result<(u64, u64, Vec<u8>)> {
    let file = ElfFile64::<Endianness>::parse(elf).context("the firmware is not a 64-bit ELF")?;
    let endian = file.endian();
    let header = file.elf_header();
    let mut segments = Vec::new();
    for segment in file.elf_program_headers() {
        if segment.p_type(endian) != PT_LOAD || segment.p_filesz(endian) == 0 {
            continue;
        }
        let data = segment
            .data(endian, elf)
            .map_err(|_| anyhow::anyhow!("an ELF segment lies outside the file"))?;
        segments.push((segment.p_paddr(endian), data));
    }
    let start = segments
        .iter()
        .map(|(address, _)| *address)
        .min()
        .context("the firmware ELF has no loadable segment")?;
    let end = segments
        .iter()
        .map(|(address, data)| address + data.len() as u64)
        .max()
        .unwrap_or(start);
    let length = usize::try_from(end - start).context("segments too far apart")?;
    if length > 256 << 20 {
        bail!("the firmware's segments span {length} bytes: not a firmware image");
    }
    let mut bin = vec![0u8; length];
    for (address, data) in segments {
        let offset = (address - start) as usize;
        bin[offset..offset + data.len()].copy_from_slice(data);
    }
    Ok((start, header.e_entry(endian), bin))
}

/// SHA-256 of `bytes` as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// The revision of the work tree: `git describe --always --dirty`, or "unknown".
fn git_revision() -> String {
    Command::new("git")
        .current_dir(workspace_root())
        .args(["describe", "--always", "--dirty", "--abbrev=12"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 little-endian aarch64 file with two PT_LOAD segments and a gap between.
    fn tiny_elf() -> Vec<u8> {
        let mut elf = vec![0u8; 64 + 2 * 56];
        elf[0..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2; // 64-bit
        elf[5] = 1; // little endian
        elf[6] = 1; // version
        elf[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        elf[18..20].copy_from_slice(&183u16.to_le_bytes()); // EM_AARCH64
        elf[20..24].copy_from_slice(&1u32.to_le_bytes());
        elf[24..32].copy_from_slice(&0x4008_0000u64.to_le_bytes()); // entry
        elf[32..40].copy_from_slice(&64u64.to_le_bytes()); // phoff
        elf[52..54].copy_from_slice(&64u16.to_le_bytes()); // ehsize
        elf[54..56].copy_from_slice(&56u16.to_le_bytes()); // phentsize
        elf[56..58].copy_from_slice(&2u16.to_le_bytes()); // phnum
        let data_offset = elf.len() as u64;
        elf.extend_from_slice(b"CODE");
        elf.extend_from_slice(b"DATA");
        for (i, (address, offset)) in [
            (0x4008_0000u64, data_offset),
            (0x4008_0008, data_offset + 4),
        ]
        .into_iter()
        .enumerate()
        {
            let ph = &mut elf[64 + i * 56..64 + (i + 1) * 56];
            ph[0..4].copy_from_slice(&PT_LOAD.to_le_bytes());
            ph[8..16].copy_from_slice(&offset.to_le_bytes());
            ph[16..24].copy_from_slice(&address.to_le_bytes()); // vaddr
            ph[24..32].copy_from_slice(&address.to_le_bytes()); // paddr
            ph[32..40].copy_from_slice(&4u64.to_le_bytes()); // filesz
            ph[40..48].copy_from_slice(&4u64.to_le_bytes()); // memsz
        }
        elf
    }

    #[test]
    fn raw_binary_lays_segments_out_with_gaps_zeroed() {
        let (load, entry, bin) = raw_binary(&tiny_elf()).unwrap();
        assert_eq!(load, 0x4008_0000);
        assert_eq!(entry, 0x4008_0000);
        assert_eq!(bin, b"CODE\0\0\0\0DATA");
    }

    #[test]
    fn raw_binary_refuses_garbage() {
        assert!(raw_binary(b"not an elf").is_err());
        let mut elf = tiny_elf();
        elf[64 + 8..64 + 16].copy_from_slice(&u64::MAX.to_le_bytes()); // offset past the end
        assert!(raw_binary(&elf).is_err());
    }

    fn image_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("e3-fw-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let elf = tiny_elf();
        let (manifest, bin) = Manifest::describe(Board::QemuVirt, "test".into(), &elf).unwrap();
        fs::write(dir.join(ELF_NAME), &elf).unwrap();
        fs::write(dir.join(BIN_NAME), &bin).unwrap();
        fs::write(
            dir.join(MANIFEST_NAME),
            serde_json::to_string(&manifest).unwrap(),
        )
        .unwrap();
        dir
    }

    #[test]
    fn load_accepts_a_matching_image() {
        let dir = image_dir("good");
        let image = load(&dir, Board::QemuVirt).unwrap();
        assert_eq!(image.manifest.size, 12);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn load_refuses_wrong_board_tampering_and_missing_manifest() {
        let dir = image_dir("bad");
        let error = load(&dir, Board::Bluefield).unwrap_err().to_string();
        assert!(
            error.contains("built for qemu-virt, not bluefield"),
            "{error}"
        );

        let mut bin = fs::read(dir.join(BIN_NAME)).unwrap();
        bin[0] ^= 1;
        fs::write(dir.join(BIN_NAME), &bin).unwrap();
        let error = load(&dir, Board::QemuVirt).unwrap_err().to_string();
        assert!(error.contains("has SHA-256"), "{error}");

        bin.push(0);
        fs::write(dir.join(BIN_NAME), &bin).unwrap();
        let error = load(&dir, Board::QemuVirt).unwrap_err().to_string();
        assert!(error.contains("bytes, the manifest says 12"), "{error}");

        fs::write(dir.join(MANIFEST_NAME), "{").unwrap();
        let error = load(&dir, Board::QemuVirt).unwrap_err().to_string();
        assert!(error.contains("is not a firmware manifest"), "{error}");

        fs::remove_file(dir.join(MANIFEST_NAME)).unwrap();
        let error = load(&dir, Board::QemuVirt).unwrap_err().to_string();
        assert!(error.contains("no firmware manifest"), "{error}");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn board_names_round_trip() {
        for board in Board::ALL {
            assert_eq!(board.name().parse::<Board>().unwrap(), board);
        }
        assert!("arduino".parse::<Board>().is_err());
    }
}
