//! vpnctl: the operator's CLI. The control socket arrives with the sessions issue.

fn main() {
    eprintln!(
        "vpnctl {}: no daemon control socket yet",
        env!("CARGO_PKG_VERSION")
    );
    std::process::exit(3)
}
