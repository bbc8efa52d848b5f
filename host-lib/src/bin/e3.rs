//! `e3`: the operator's command.

fn main() {
    eprintln!("e3: no subcommands yet");
    std::process::exit(2);
}
