//! The command line: `meshdns serve`, `zone check|reload`, `config check`, `version`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// meshdns: an authoritative DNS server built to run as a gossip mesh.
#[derive(Debug, Parser)]
#[command(name = "meshdns", version, about, long_about = None)]
pub struct Cli {
    /// What to do; without one, `serve` with its defaults.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node: serve zones over UDP and TCP, metrics over HTTP.
    Serve(ServeArgs),
    /// Work with zone files.
    #[command(subcommand)]
    Zone(ZoneCommand),
    /// Work with the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print the version.
    Version,
}

/// `meshdns serve` flags; each overrides the config file and environment.
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// TOML configuration file (also MESHDNS_CONFIG).
    #[arg(long, env = "MESHDNS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory of *.zone files [default: the embedded demo zone].
    #[arg(long)]
    pub zone_dir: Option<PathBuf>,
    /// DNS address, UDP and TCP; repeat for more [default: 127.0.0.1:1053].
    #[arg(long)]
    pub listen: Vec<String>,
    /// Where compiled snapshots are kept [default: ./meshdns-data].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Metrics, health and reload listener [default: 127.0.0.1:9153].
    #[arg(long)]
    pub http: Option<String>,
    /// UDP sockets (threads) per listen address [default: one per core].
    #[arg(long)]
    pub udp_workers: Option<usize>,
    /// Log format: text or json.
    #[arg(long)]
    pub log_format: Option<String>,
}

/// `meshdns zone ...`
#[derive(Debug, Subcommand)]
pub enum ZoneCommand {
    /// Check zone files like named-checkzone, without serving them.
    Check {
        /// Zone files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Zone name for relative names [default: from the file name].
        #[arg(long)]
        origin: Option<String>,
    },
    /// Ask a running node to reload its zone files (same as SIGHUP).
    Reload {
        /// The node's HTTP listener.
        #[arg(long, default_value = "127.0.0.1:9153")]
        http: SocketAddr,
    },
}

/// `meshdns config ...`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration (file, MESHDNS_* variables) and print it.
    Check {
        /// TOML configuration file (also MESHDNS_CONFIG).
        #[arg(long, env = "MESHDNS_CONFIG")]
        config: Option<PathBuf>,
    },
}
