//! What `vpnctl show crypto session` and its JSON show: the crypto sessions as the session
//! table owns them (IOS "Background Crypto Sessions": the IKE and IPsec SAs between two
//! crypto endpoints, keyed by peer address and port, fvrf and ivrf).

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

/// IOS session states (the IP Security VPN Monitoring chapter).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Status {
    /// An IKE SA and at least one IPsec SA pair.
    #[serde(rename = "UP-ACTIVE")]
    UpActive,
    /// An IKE SA, no IPsec SA.
    #[serde(rename = "UP-IDLE")]
    UpIdle,
    /// IPsec SAs whose IKE SA is gone.
    #[serde(rename = "UP-NO-IKE")]
    UpNoIke,
    /// An IKE SA being negotiated.
    #[serde(rename = "DOWN-NEGOTIATING")]
    DownNegotiating,
    #[serde(rename = "DOWN")]
    Down,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::UpActive => "UP-ACTIVE",
            Status::UpIdle => "UP-IDLE",
            Status::UpNoIke => "UP-NO-IKE",
            Status::DownNegotiating => "DOWN-NEGOTIATING",
            Status::Down => "DOWN",
        }
    }
    pub fn is_up(self) -> bool {
        matches!(self, Status::UpActive | Status::UpIdle | Status::UpNoIke)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What identifies a session (IOS: peer address and port, fvrf, ivrf).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SessionKey {
    pub peer: SocketAddr,
    pub fvrf: Option<String>,
    pub ivrf: Option<String>,
}

/// Byte and packet totals. 64-bit and never going backwards across rekeys: the table folds
/// the last reading of every SA that left into `retired` (RADIUS gigawords are derived).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub packets_in: u64,
    pub packets_out: u64,
}

impl Totals {
    pub fn add(&mut self, o: &Totals) {
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.packets_in += o.packets_in;
        self.packets_out += o.packets_out;
    }
}

/// A session's totals as the sum they are: the SAs already gone, and the latest reading of
/// each live one. Journalled with the session's crash Stop, so that after a crash the sum is
/// redone with the final counters of the SAs the crash left in the kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counted {
    pub retired: Totals,
    pub live: Vec<LiveSa>,
}

/// One live SA's latest reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveSa {
    pub spi: u32,
    pub inbound: bool,
    pub bytes: u64,
    pub packets: u64,
}

impl Counted {
    pub fn totals(&self) -> Totals {
        let mut t = self.retired;
        for sa in &self.live {
            let (bytes, packets) = if sa.inbound {
                (&mut t.bytes_in, &mut t.packets_in)
            } else {
                (&mut t.bytes_out, &mut t.packets_out)
            };
            *bytes += sa.bytes;
            *packets += sa.packets;
        }
        t
    }

    /// The live SAs' SPIs, to see a rekey between two readings.
    pub fn spis(&self) -> impl Iterator<Item = u32> + '_ {
        self.live.iter().map(|sa| sa.spi)
    }

    /// With the kernel's latest readings (`reading(spi)`: bytes, packets) of the live SAs
    /// that it still has; the number of SAs whose reading moved. Kernel counters only grow:
    /// a smaller one is another SA reusing the SPI and is ignored.
    pub fn with_readings(&self, reading: impl Fn(u32) -> Option<(u64, u64)>) -> (Counted, usize) {
        let mut moved = 0;
        let live = self
            .live
            .iter()
            .map(|sa| match reading(sa.spi) {
                Some((bytes, packets))
                    if bytes >= sa.bytes
                        && packets >= sa.packets
                        && (bytes, packets) != (sa.bytes, sa.packets) =>
                {
                    moved += 1;
                    LiveSa {
                        bytes,
                        packets,
                        ..*sa
                    }
                }
                _ => *sa,
            })
            .collect();
        (
            Counted {
                retired: self.retired,
                live,
            },
            moved,
        )
    }
}

impl From<Totals> for Counted {
    /// Totals with nothing known of their SAs (all of them counted as gone).
    fn from(retired: Totals) -> Counted {
        Counted {
            retired,
            live: Vec::new(),
        }
    }
}

/// One IKE SA of a session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IkeSaView {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// "Active" when established, else "Negotiating" (IOS wording).
    pub state: String,
    /// Our IKE SPI, shown as IOS's connid.
    pub connid: u64,
    /// Seconds until the IKE SA is rekeyed (IOS "lifetime:hh:mm:ss").
    pub lifetime_remaining_s: u64,
    pub capabilities: Vec<String>,
}

/// One direction of a flow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowDirection {
    /// Packets decrypted (inbound) or encrypted (outbound).
    pub packets: u64,
    /// Replay-check and integrity (ICV) drops, from the kernel's per-SA stats.
    pub dropped: u64,
    /// Remaining life of the newest SA, kilobytes (None: no volume limit) and seconds.
    pub life_kb: Option<u64>,
    pub life_s: u64,
}

/// One IPsec flow: a pair of traffic selectors and the SA pairs serving it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowView {
    /// Protocol (0 = ip) and the two selectors, local first, as prefixes or ranges.
    pub protocol: u8,
    pub local: String,
    pub remote: String,
    /// SAs in the kernel for this flow (both directions; during a rekey more than 2).
    pub active_sas: u32,
    /// "crypto map" for configured peers, as IOS says.
    pub origin: String,
    pub inbound: FlowDirection,
    pub outbound: FlowDirection,
}

/// The user a session's client authenticated as (EAP through RADIUS, RFC 7296 2.16).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SessionUser {
    /// The EAP identity (or the Access-Accept's User-Name), escaped: the client chose it.
    pub username: String,
    /// The Access-Accept's Class attributes, raw: every accounting record echoes them
    /// (RFC 2865 5.25).
    pub class: Vec<Vec<u8>>,
    /// The RADIUS server that accepted.
    pub radius_server: String,
}

/// One session as `show crypto session detail` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionView {
    pub key: SessionKey,
    /// The configured peer's name (vpnd's own; IOS has none).
    pub peer_name: String,
    /// The interface the IKE traffic uses (IOS "Interface:"), when known.
    pub interface: Option<String>,
    pub status: Status,
    pub description: Option<String>,
    /// The peer's IKE identity (IOS "Phase1_id").
    pub phase1_id: Option<String>,
    /// The user EAP authenticated (IOS "Username").
    #[serde(default)]
    pub user: Option<SessionUser>,
    pub local: IpAddr,
    pub ike_sas: Vec<IkeSaView>,
    pub flows: Vec<FlowView>,
    /// Session totals across every SA it ever had.
    pub totals: Totals,
    /// Unix time the session came up (its first IPsec SA pair).
    pub up_since: Option<u64>,
    /// The address leased to the client (configuration payload; IOS "Assigned address").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_ip: Option<IpAddr>,
    /// The IPv6 address leased to the client (INTERNAL_IP6_ADDRESS), beside `assigned_ip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_ip6: Option<IpAddr>,
    /// Seconds until the engine ends the session at its RADIUS Session-Timeout (RFC 2865
    /// 5.27).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_timeout_s: Option<u64>,
}

impl SessionView {
    /// The user of a remote-access session (IOS `Username`): the EAP user, else the IKE
    /// identity of a client that was given an address; None for a site-to-site peer.
    pub fn username(&self) -> Option<&str> {
        match &self.user {
            Some(u) => Some(&u.username),
            None => self
                .assigned_ip
                .or(self.assigned_ip6)
                .and(self.phase1_id.as_deref()),
        }
    }
}

/// One configured peer as `show crypto isakmp peer` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerView {
    pub name: String,
    pub address: String,
    pub port: u16,
    pub description: Option<String>,
    /// IOS flags, e.g. PEER_POLICY.
    pub flags: Vec<String>,
}
