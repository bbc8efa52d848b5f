//! `e3`: the operator's command. A thin dispatcher: each subcommand lives in its own module.

mod place;
mod report;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "e3", about = "Operate the E3 microservice platform", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Place one application on a cluster and print where every DAG node went and its scores.
    Place(place::Args),
    /// Place every built-in application with every algorithm and compare the scores.
    Report(report::Args),
    /// Serve microservices on the host IP over a NIC's PCIe channel file.
    Serve(serve::Args),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Place(args) => place::run(args),
        Command::Report(args) => report::run(args),
        Command::Serve(args) => serve::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("e3: {error}");
            ExitCode::FAILURE
        }
    }
}
