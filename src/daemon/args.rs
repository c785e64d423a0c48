//! vpnd's command line, here rather than in the binary so that the man page and shell
//! completions (`cargo run --example gen-docs`) are generated from the same definition.

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "vpnd",
    version,
    about = "IKEv2 daemon for the Linux XFRM stack",
    long_about = "IKEv2 daemon for the Linux XFRM stack: negotiates with strongSwan, Libreswan \
                  and Cisco peers, installs the ESP SAs and policies into the kernel, keeps \
                  crypto sessions whose totals survive rekeys, and sends RADIUS accounting \
                  and IOS syslog notices. Operated with vpnctl(8); configured in vpnd.yaml(5)."
)]
pub struct Args {
    /// The YAML configuration.
    #[arg(long, short, default_value = crate::config::DEFAULT_PATH, value_name = "FILE")]
    pub config: PathBuf,
    /// Validate the configuration and exit.
    #[arg(long)]
    pub check: bool,
    /// Remove every SA and policy vpnd owns from the kernel, the standing policies that
    /// keep protected flows blocked while vpnd is stopped included, and exit. Run it with
    /// vpnd stopped, to take a gateway out of service: the flows then leave in clear.
    #[arg(long, conflicts_with = "check")]
    pub flush: bool,
}

/// The clap definition, for generated documentation.
pub fn command() -> clap::Command {
    <Args as clap::CommandFactory>::command()
}
