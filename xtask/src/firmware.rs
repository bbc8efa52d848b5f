//! `cargo xtask build-fw` and `cargo xtask flash`: firmware images per board, and putting one on
//! a NIC (an emulated one under QEMU, or the documented path of a real board with `--dry-run`).

use std::fs;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use e3_tests::firmware::{self, Board, Image};
use e3_tests::nic::{ChannelFile, NicSpec, PortBackend};
use e3_tests::qemu;
use nic_firmware::boot_config::BootConfig;
use pcie_channel::MappedChannel;

use crate::toolchain::{self, render};

/// Options of `cargo xtask build-fw`.
#[derive(clap::Args)]
pub struct BuildArgs {
    /// Board to build for: qemu-virt, bluefield, liquidio3, or all.
    #[arg(long, default_value = "qemu-virt")]
    board: String,
}

/// Options of `cargo xtask flash`.
#[derive(clap::Args)]
pub struct FlashArgs {
    /// Board: qemu-virt (starts an emulated NIC), bluefield or liquidio3 (real boards).
    #[arg(long, default_value = "qemu-virt")]
    board: String,
    /// Which NIC of this host (names its channel file, addresses and ports).
    #[arg(long, default_value_t = 0)]
    nic: u8,
    /// Show exactly what would be done, and do nothing.
    #[arg(long)]
    dry_run: bool,
    /// Directory holding the image and its manifest (default: target/firmware/<board>).
    #[arg(long)]
    image_dir: Option<PathBuf>,
    /// Boot configuration file (default: written for NIC N, see docs/firmware.md).
    #[arg(long)]
    config: Option<PathBuf>,
    /// qemu-virt: number of ports (UDP sockets on 127.0.0.1, printed at start).
    #[arg(long, default_value_t = 1)]
    ports: u8,
    /// qemu-virt: number of cores.
    #[arg(long, default_value_t = 4)]
    cores: u32,
    /// qemu-virt: connect port 0 to this tap device instead of a UDP socket (needs root).
    #[arg(long)]
    tap: Option<String>,
    /// qemu-virt: no PCIe channel; the configuration goes through QEMU's fw_cfg instead.
    #[arg(long)]
    no_channel: bool,
    /// bluefield: the rshim device directory of the card.
    #[arg(long, default_value = "/dev/rshim0")]
    rshim: PathBuf,
    /// liquidio3: the serial console of the card's boot loader (U-Boot).
    #[arg(long, default_value = "/dev/ttyUSB0")]
    console: PathBuf,
    /// liquidio3: the TFTP server's root directory the card's U-Boot fetches from.
    #[arg(long, default_value = "/srv/tftp")]
    tftp_root: PathBuf,
}

/// Entry point of `build-fw`.
pub fn build(args: BuildArgs) -> Result<()> {
    toolchain::ensure_firmware_target()?;
    let boards = if args.board == "all" {
        Board::ALL.to_vec()
    } else {
        vec![args.board.parse()?]
    };
    for board in boards {
        let image = firmware::build(board)?;
        print_image(&image);
    }
    Ok(())
}

fn print_image(image: &Image) {
    let m = &image.manifest;
    println!(
        "{}: {} bytes at {:#x}, entry {:#x}, sha256 {}, revision {}\n  {}\n  {}",
        m.board,
        m.size,
        m.load_address,
        m.entry,
        m.sha256,
        m.git_revision,
        image.elf.display(),
        image.bin.display()
    );
}

/// Entry point of `flash`.
pub fn flash(args: FlashArgs) -> Result<()> {
    let board: Board = args.board.parse()?;
    let dir = args.image_dir.clone().unwrap_or_else(|| board.output_dir());
    let image = firmware::load(&dir, board)?;
    print_image(&image);
    match board {
        Board::QemuVirt => flash_qemu(&args, &image),
        Board::Bluefield => flash_bluefield(&args, &image),
        Board::Liquidio3 => flash_liquidio(&args, &image),
    }
}

/// The configuration NIC `n` gets by default: IP 10.0.0.(2+n), the host 10.0.0.1.
pub fn default_config(nic: u8) -> String {
    format!(
        "# Boot configuration of emulated NIC {nic} (docs/firmware.md, \"Configuration\").\n\
         nic_ip = {}\n\
         host_ip = 10.0.0.1\n\
         service = kvs 7000\n\
         service = count 7001\n",
        Ipv4Addr::new(10, 0, 0, 2 + nic)
    )
}

/// The UDP addresses of NIC `nic`'s port `port`: (QEMU's end, the switch's end).
pub fn udp_port_addresses(nic: u8, port: u8) -> (SocketAddr, SocketAddr) {
    let base = 40_000 + u16::from(nic) * 100 + u16::from(port) * 2;
    (
        SocketAddr::from(([127, 0, 0, 1], base)),
        SocketAddr::from(([127, 0, 0, 1], base + 1)),
    )
}

/// Reads and validates a configuration file with the firmware's own parser.
pub fn check_config(path: &Path) -> Result<()> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    BootConfig::parse(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(())
}

fn flash_qemu(args: &FlashArgs, image: &Image) -> Result<()> {
    let config = match &args.config {
        Some(path) => path.clone(),
        None => {
            let path = Board::QemuVirt
                .output_dir()
                .join(format!("nic{}.conf", args.nic));
            if !args.dry_run {
                fs::write(&path, default_config(args.nic))
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            path
        }
    };
    if !args.dry_run || args.config.is_some() {
        check_config(&config)?;
    }
    let mut ports = Vec::new();
    for port in 0..args.ports {
        if let (0, Some(ifname)) = (port, &args.tap) {
            ports.push(PortBackend::Tap {
                ifname: ifname.clone(),
            });
            println!("port 0: tap device {ifname}");
            continue;
        }
        let (qemu, peer) = udp_port_addresses(args.nic, port);
        println!("port {port}: frames as UDP datagrams, NIC at {qemu}, switch at {peer}");
        ports.push(PortBackend::Udp { qemu, peer });
    }
    let channel = (!args.no_channel).then(|| ChannelFile {
        path: PathBuf::from(format!("/dev/shm/e3-nic{}", args.nic)),
        size: e3_tests::host::channel_size(),
    });
    match &channel {
        Some(c) => println!(
            "channel: {} ({} KiB), boot configuration written into it from {}",
            c.path.display(),
            c.size >> 10,
            config.display()
        ),
        None => println!(
            "no channel: boot configuration {} over fw_cfg",
            config.display()
        ),
    }
    let spec = NicSpec {
        image: image.elf.clone(),
        config: channel.is_none().then(|| config.clone()),
        ports,
        channel: channel.clone(),
        cores: args.cores,
        namespace: None,
        ..Default::default()
    };
    let qemu_path = if args.dry_run {
        qemu::find().unwrap_or_else(|| PathBuf::from(qemu::QEMU))
    } else {
        crate::system::ensure_qemu()?
    };
    let mut command = spec.command(&qemu_path);
    if args.dry_run {
        if let Some(c) = &channel {
            println!(
                "would create the channel {} ({} bytes) and write the boot configuration into it",
                c.path.display(),
                c.size
            );
        }
        println!("would run: {}", render(&command));
        return Ok(());
    }
    // The host end of the channel: the region stays formatted while QEMU runs.
    let _host = match &channel {
        Some(c) => Some(create_channel(c, &config)?),
        None => None,
    };
    eprintln!("$ {}", render(&command));
    let status = command.status().context("could not start QEMU")?;
    match status.code() {
        Some(0) | None => Ok(()),
        Some(3) => bail!("the firmware refused its boot configuration (see the UART above)"),
        Some(code) => bail!("the firmware stopped with exit status {code} (see the UART above)"),
    }
}

/// Creates and formats the channel file and writes the boot configuration into it.
fn create_channel(channel: &ChannelFile, config: &Path) -> Result<MappedChannel> {
    let text = fs::read(config).with_context(|| format!("reading {}", config.display()))?;
    let mapped = MappedChannel::create_sized(&channel.path, channel.size, e3_tests::host::GEOMETRY)
        .with_context(|| format!("creating the channel {}", channel.path.display()))?;
    mapped
        .write_boot_config(&text)
        .map_err(|e| anyhow::anyhow!("writing the boot configuration: {e}"))?;
    Ok(mapped)
}

/// One step of a real board's flash path.
enum Step {
    /// Run a command on this host.
    Run(String, Command),
    /// Type a line on a serial console (the card's boot loader).
    Type {
        what: String,
        console: PathBuf,
        line: String,
    },
}

/// Runs `steps` in order, or prints them for `--dry-run`.
fn run_steps(dry_run: bool, steps: Vec<Step>) -> Result<()> {
    for step in steps {
        match step {
            Step::Run(what, mut command) => {
                if dry_run {
                    println!("would {what}:\n  {}", render(&command));
                    continue;
                }
                eprintln!("{what}: {}", render(&command));
                let status = command
                    .status()
                    .with_context(|| format!("could not run {}", render(&command)))?;
                if !status.success() {
                    bail!("{what} failed ({status})");
                }
            }
            Step::Type {
                what,
                console,
                line,
            } => {
                if dry_run {
                    println!("would {what}, typing on {}:\n  {line}", console.display());
                    continue;
                }
                eprintln!("{what}: typing `{line}` on {}", console.display());
                let mut tty = fs::OpenOptions::new()
                    .write(true)
                    .open(&console)
                    .with_context(|| format!("opening the console {}", console.display()))?;
                tty.write_all(format!("{line}\r").as_bytes())
                    .with_context(|| format!("writing to {}", console.display()))?;
            }
        }
    }
    Ok(())
}

/// BlueField: wrap the image in a boot stream and push it through the rshim device.
fn flash_bluefield(args: &FlashArgs, image: &Image) -> Result<()> {
    let boot = args.rshim.join("boot");
    let bfb = image.bin.with_extension("bfb");
    if !args.dry_run {
        if !boot.exists() {
            bail!(
                "no rshim boot device at {} (is the rshim driver running, and is this the host \
                 of a BlueField?); `--dry-run` shows the steps",
                boot.display()
            );
        }
        if qemu::find_on_path("mlx-mkbfb").is_none() {
            bail!("mlx-mkbfb (from the BlueField software distribution) is not on PATH");
        }
    }
    let mut mkbfb = Command::new("mlx-mkbfb");
    mkbfb.arg("--image").arg(&image.bin).arg(&bfb);
    let mut push = Command::new("dd");
    push.arg(format!("if={}", bfb.display()))
        .arg(format!("of={}", boot.display()))
        .args(["bs=4M", "oflag=sync"]);
    run_steps(
        args.dry_run,
        vec![
            Step::Run("wrap the image in a BlueField boot stream".into(), mkbfb),
            Step::Run(
                "push the boot stream through rshim (the card reboots into it)".into(),
                push,
            ),
        ],
    )?;
    let console = args.rshim.join("console");
    println!(
        "then watch the UART for `ready:`: {}",
        render(Command::new("cat").arg(&console))
    );
    Ok(())
}

/// Where the image goes under the TFTP root, and the name U-Boot asks for.
const LIQUIDIO_TFTP_NAME: &str = "e3/nic-firmware.bin";

/// LiquidIO III (Marvell OCTEON TX2, CN9xxx Arm cores): the card boots from its own flash
/// (boot ROM, then TF-A and U-Boot); the host's driver for these cards (`octeon_ep`) loads no
/// firmware, it waits for the card's firmware to report ready. So the image is handed to the
/// card's boot loader: staged on a TFTP server, fetched by U-Boot over the card's management
/// port to the image's load address and started there. Nothing is written to the card's flash
/// (a power cycle brings back its own software).
fn flash_liquidio(args: &FlashArgs, image: &Image) -> Result<()> {
    if !args.dry_run {
        if !args.console.exists() {
            bail!(
                "no serial console at {} (the card's U-Boot console: give it with --console); \
                 `--dry-run` shows the steps",
                args.console.display()
            );
        }
        if !args.tftp_root.is_dir() {
            bail!(
                "no TFTP root at {} (give the TFTP server's directory with --tftp-root); \
                 `--dry-run` shows the steps",
                args.tftp_root.display()
            );
        }
    }
    let staged = args.tftp_root.join(LIQUIDIO_TFTP_NAME);
    let mut install = Command::new("install");
    install
        .args(["-D", "-m", "0644"])
        .arg(&image.bin)
        .arg(&staged);
    let load = image.manifest.load_address;
    run_steps(
        args.dry_run,
        vec![
            Step::Run(
                "stage the image on the TFTP server the card's U-Boot fetches from".into(),
                install,
            ),
            Step::Type {
                what: "have the card's U-Boot fetch it to its load address and start it".into(),
                console: args.console.clone(),
                line: format!("tftpboot {load:#x} {LIQUIDIO_TFTP_NAME} && go {load:#x}"),
            },
        ],
    )?;
    println!(
        "then watch the console for `ready:`: {}",
        render(Command::new("cat").arg(&args.console))
    );
    Ok(())
}
