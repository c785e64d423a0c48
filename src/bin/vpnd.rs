//! The vpnd daemon. The IKEv2 engine is not wired in yet (see the IKEv2 daemon issue);
//! for now the binary checks that the kernel's XFRM interface answers, which is the first
//! thing the daemon does at start.

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let xfrm = vpnd_xfrm::Xfrm::connect(vpnd_xfrm::Owner::default())?;
    let sas = xfrm.dump_counters(vpnd_xfrm::DumpScope::Owned).await?;
    eprintln!(
        "vpnd {}: kernel XFRM reachable, {} SAs owned by vpnd; the IKEv2 daemon is not built yet",
        env!("CARGO_PKG_VERSION"),
        sas.len()
    );
    std::process::exit(1)
}
