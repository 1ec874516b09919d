//! The `rackboot` command: parses arguments, validates the configuration, installs
//! logging, and hands over to a subcommand in cli.rs.
#![forbid(unsafe_code)]

mod cli;

use std::process::ExitCode;

use clap::Parser;
use rackboot::config::{Level, LogFormat};

fn main() -> ExitCode {
    let args = cli::Args::parse();
    if let Some(code) = args.ask_server() {
        return code;
    }
    if let Some(storm) = args.storm() {
        install_logging(LogFormat::Text, Level::Warn);
        return cli::run_storm(storm);
    }
    let config = match cli::load_config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rackboot: {e}");
            return ExitCode::from(2);
        }
    };
    install_logging(config.log.format, config.log.level);
    cli::run(args, config)
}

fn install_logging(format: LogFormat, level: Level) {
    let level = match level {
        Level::Error => tracing::Level::ERROR,
        Level::Warn => tracing::Level::WARN,
        Level::Info => tracing::Level::INFO,
        Level::Debug => tracing::Level::DEBUG,
        Level::Trace => tracing::Level::TRACE,
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false);
    let result = match format {
        LogFormat::Text => builder.with_ansi(false).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    if let Err(e) = result {
        eprintln!("rackboot: cannot install logging: {e}");
    }
}
