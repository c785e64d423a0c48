//! Generates what the Debian package ships besides the binaries, from the same clap
//! definitions the binaries parse with: `cargo run --example gen-docs -- [OUT]` writes
//! OUT/man/vpnd.8 and vpnctl.8 (clap_mangen), OUT/man/vpnd.yaml.5 (copied from
//! doc/vpnd.yaml.5, which tests/docs.rs checks against the configuration schema), and
//! OUT/completions/{vpnd,vpnctl}.{bash,fish} and _vpnd, _vpnctl (zsh) (clap_complete).
//! OUT defaults to target/docs, where Cargo.toml's [package.metadata.deb] assets look.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap_complete::Shell;

/// vpnctl's words are one grammar parsed after clap (src/control/cli.rs), not a tree of
/// pages: its page lists them instead of naming vpnctl-show(8) and the like.
const VPNCTL_EXTRA: &str = r#".SH COMMANDS
Every word may be abbreviated to an unambiguous prefix, as on IOS
(\fBvpnctl sh cr sess det\fR).
.TP
\fBshow crypto session\fR [\fBbrief\fR|\fBsummary\fR|\fBdetail\fR] [\fBlocal\fR \fIIP\fR [\fBport\fR \fIN\fR]] [\fBremote\fR \fIIP\fR [\fBport\fR \fIN\fR]] [\fBfvrf\fR \fINAME\fR] [\fBivrf\fR \fINAME\fR]
Crypto sessions: their IKE SAs, IPsec flows and totals.
.TP
\fBshow crypto isakmp peer\fR
The configured IKE peers.
.TP
\fBshow aaa accounting\fR
RADIUS accounting: the outbox, its journal and the servers.
.TP
\fBclear crypto session\fR [filters as for show]
Deletes sessions (every session without a filter); static peers come back up.
.TP
\fBdebug crypto isakmp\fR [\fBaaa\fR] \fBon\fR|\fBoff\fR
IKE (or AAA) debugging in vpnd's log.
.SH EXIT STATUS
0 success, 1 vpnd refused the command, 2 usage error, 3 vpnd not reachable.
.SH SEE ALSO
\fBvpnd\fR(8), \fBvpnd.yaml\fR(5)
"#;

const VPND_EXTRA: &str = r#".SH SIGNALS
SIGTERM and SIGINT: delete every IKE SA with its peer, remove vpnd's SAs from the kernel
(the standing policies of protected flows stay) and exit. SIGHUP is logged and ignored
(reload is not implemented).
.SH ENVIRONMENT
\fBVPND_LOG\fR: a log filter overriding \fBlog.level\fR. \fBNO_COLOR\fR: no colours even on a
terminal. \fBNOTIFY_SOCKET\fR, \fBWATCHDOG_USEC\fR: set by systemd (READY=1, STATUS=,
WATCHDOG=1).
.SH FILES
/etc/vpnd/vpnd.yaml, /run/vpnd/vpnd.sock, /var/lib/vpnd/accounting.journal
.SH SEE ALSO
\fBvpnctl\fR(8), \fBvpnd.yaml\fR(5), \fBip-xfrm\fR(8)
"#;

fn man(cmd: clap::Command, section: &str, extra: &str, out: &Path) -> Result<()> {
    let name = cmd.get_name().to_string();
    let m = clap_mangen::Man::new(cmd).section(section).manual("vpnd");
    let mut buf = Vec::new();
    m.render_title(&mut buf)?;
    m.render_name_section(&mut buf)?;
    m.render_synopsis_section(&mut buf)?;
    m.render_description_section(&mut buf)?;
    m.render_options_section(&mut buf)?;
    buf.extend_from_slice(extra.as_bytes());
    m.render_version_section(&mut buf)?;
    let path = out.join(format!("{name}.{section}"));
    std::fs::write(&path, buf).with_context(|| path.display().to_string())
}

fn completions(mut cmd: clap::Command, out: &Path) -> Result<()> {
    let name = cmd.get_name().to_string();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd, &name, out)
            .with_context(|| format!("{shell} completions for {name}"))?;
    }
    Ok(())
}

fn main() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/docs"));
    let (man_dir, comp_dir) = (out.join("man"), out.join("completions"));
    for d in [&man_dir, &comp_dir] {
        std::fs::create_dir_all(d).with_context(|| d.display().to_string())?;
    }
    man(vpnd::daemon::args::command(), "8", VPND_EXTRA, &man_dir)?;
    man(vpnd::control::cli::command(), "8", VPNCTL_EXTRA, &man_dir)?;
    std::fs::copy(root.join("doc/vpnd.yaml.5"), man_dir.join("vpnd.yaml.5"))
        .context("doc/vpnd.yaml.5")?;
    completions(vpnd::daemon::args::command(), &comp_dir)?;
    completions(vpnd::control::cli::command(), &comp_dir)?;
    println!("{}", out.display());
    Ok(())
}
