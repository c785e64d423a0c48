//! One accounting record and its encoding as an Accounting-Request (RFC 2866).
//!
//! The attributes are built with the `radius` crate (`radius::core::*`), which also computes the
//! RFC 2866 §3 Request Authenticator in `Packet::encode`. What we add here: the IOS-style
//! attribute set (Cisco VSAs, gigawords carry, NAS-IPv6), length limits the crate does not
//! enforce, and the Acct-Delay-Time, which changes on every transmission.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use radius::core::avp::AVP;
use radius::core::code::Code;
use radius::core::packet::Packet;
use radius::core::vsa::StringVSA;
use radius::core::{rfc2865, rfc2866, rfc2869, rfc3162, rfc6911};
use serde::{Deserialize, Serialize};

/// Cisco's IANA enterprise number, the vendor of Cisco-AVPair and cisco-nas-port.
pub const VENDOR_CISCO: u32 = 9;
/// Cisco vendor attribute 1: `Cisco-AVPair` ("key=value").
pub const CISCO_AVPAIR: u8 = 1;
/// Cisco vendor attribute 2: `cisco-nas-port` (e.g. "FastEthernet0/0.1").
pub const CISCO_NAS_PORT: u8 = 2;

/// Event-Timestamp (RFC 2869 §5.3): seconds since the Unix epoch.
pub const EVENT_TIMESTAMP: u8 = rfc2869::EVENT_TIMESTAMP_TYPE;

/// Acct-Terminate-Cause values (RFC 2866 §5.10). IOS sends 0 ("none") in a Stop it has no
/// cause for; `terminate_cause: Some(0)` reproduces that.
pub mod terminate_cause {
    pub const NONE: u32 = 0;
    pub const USER_REQUEST: u32 = 1;
    pub const LOST_CARRIER: u32 = 2;
    pub const LOST_SERVICE: u32 = 3;
    pub const IDLE_TIMEOUT: u32 = 4;
    pub const SESSION_TIMEOUT: u32 = 5;
    pub const ADMIN_RESET: u32 = 6;
    pub const ADMIN_REBOOT: u32 = 7;
    pub const PORT_ERROR: u32 = 8;
    pub const NAS_ERROR: u32 = 9;
    pub const NAS_REQUEST: u32 = 10;
    pub const NAS_REBOOT: u32 = 11;
    pub const PORT_UNNEEDED: u32 = 12;
    pub const PORT_PREEMPTED: u32 = 13;
    pub const PORT_SUSPENDED: u32 = 14;
    pub const SERVICE_UNAVAILABLE: u32 = 15;
    pub const CALLBACK: u32 = 16;
    pub const USER_ERROR: u32 = 17;
    pub const HOST_REQUEST: u32 = 18;
}

/// Acct-Status-Type (RFC 2866 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AcctStatus {
    Start,
    Stop,
    /// Interim-Update (RFC 2869), "Alive" in RFC 2866: value 3.
    InterimUpdate,
    /// Accounting-On (7): the NAS starts accounting (after a reboot).
    AccountingOn,
    /// Accounting-Off (8): the NAS stops accounting (clean shutdown).
    AccountingOff,
}

impl AcctStatus {
    /// The attribute value on the wire.
    pub fn code(self) -> u32 {
        match self {
            AcctStatus::Start => rfc2866::ACCT_STATUS_TYPE_START,
            AcctStatus::Stop => rfc2866::ACCT_STATUS_TYPE_STOP,
            AcctStatus::InterimUpdate => rfc2866::ACCT_STATUS_TYPE_INTERIM_UPDATE,
            AcctStatus::AccountingOn => rfc2866::ACCT_STATUS_TYPE_ACCOUNTING_ON,
            AcctStatus::AccountingOff => rfc2866::ACCT_STATUS_TYPE_ACCOUNTING_OFF,
        }
    }
}

/// One accounting event, as it is journalled and sent. It holds no identifier, authenticator
/// or delay: those belong to one transmission and are chosen by [`AccountingRecord::encode`]'s
/// caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountingRecord {
    pub status: AcctStatus,
    /// Acct-Session-Id (44), matches a Start with its Stop.
    pub acct_session_id: String,
    /// User-Name (1): the XAUTH user or the IKE identity; omitted when `None` or empty.
    pub user_name: Option<String>,
    /// NAS-IP-Address (4) for IPv4, NAS-IPv6-Address (95, RFC 3162) for IPv6.
    pub nas_ip: Option<IpAddr>,
    /// NAS-Identifier (32).
    #[serde(default)]
    pub nas_identifier: Option<String>,
    /// NAS-Port (5).
    pub nas_port: Option<u32>,
    /// Framed-IP-Address (8): the address assigned to the client, if any.
    pub framed_ip: Option<Ipv4Addr>,
    /// Framed-IPv6-Address (168, RFC 6911 3.1): the IPv6 address assigned to the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framed_ipv6: Option<Ipv6Addr>,
    /// Class (25): the Access-Accept's, echoed unchanged in every record of the session
    /// (RFC 2865 5.25), each at most 253 octets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub class: Vec<Vec<u8>>,
    /// Cisco-AVPair (vendor 9, type 1) values, each "key=value", in this order.
    pub cisco_avpairs: Vec<String>,
    /// cisco-nas-port (vendor 9, type 2).
    pub cisco_nas_port: Option<String>,
    /// When false no vendor attribute at all is sent (IOS without
    /// `radius-server vsa send accounting`).
    pub send_vsas: bool,
    /// Acct-Session-Time (46), seconds.
    pub session_time: Option<u32>,
    /// Acct-Input-Octets (42) + Acct-Input-Gigawords (52, RFC 2869).
    pub input_octets: Option<u64>,
    /// Acct-Output-Octets (43) + Acct-Output-Gigawords (53, RFC 2869).
    pub output_octets: Option<u64>,
    /// Acct-Input-Packets (47), saturated at `u32::MAX`.
    pub input_packets: Option<u64>,
    /// Acct-Output-Packets (48), saturated at `u32::MAX`.
    pub output_packets: Option<u64>,
    /// Acct-Terminate-Cause (49), see [`terminate_cause`].
    pub terminate_cause: Option<u32>,
    /// When the event happened: the base of Acct-Delay-Time and the Event-Timestamp.
    pub event_time: SystemTime,
    /// The server groups to deliver to, in failover order (vpnd's routing, journalled with
    /// the record so that it survives a restart; never sent).
    #[serde(default)]
    pub groups: Vec<String>,
    /// The caller's own data journalled with the record and never sent (vpnd keeps there
    /// what a crash Stop's counters are the sum of, to redo the sum after a crash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<serde_json::Value>,
}

impl AccountingRecord {
    /// A record with only the mandatory parts set; fill in the rest with struct update syntax.
    pub fn new(
        status: AcctStatus,
        acct_session_id: impl Into<String>,
        event_time: SystemTime,
    ) -> Self {
        AccountingRecord {
            status,
            acct_session_id: acct_session_id.into(),
            user_name: None,
            nas_ip: None,
            nas_identifier: None,
            nas_port: None,
            framed_ip: None,
            framed_ipv6: None,
            class: Vec::new(),
            cisco_avpairs: Vec::new(),
            cisco_nas_port: None,
            send_vsas: true,
            session_time: None,
            input_octets: None,
            output_octets: None,
            input_packets: None,
            output_packets: None,
            terminate_cause: None,
            event_time,
            groups: Vec::new(),
            recovery: None,
        }
    }

    /// Acct-Delay-Time for a transmission at `now`: whole seconds since `event_time`
    /// (0 if the clock went backwards, saturating at `u32::MAX`).
    pub fn delay_at(&self, now: SystemTime) -> u32 {
        now.duration_since(self.event_time)
            .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
            .unwrap_or(0)
    }

    /// The full Accounting-Request: header, attributes, and the RFC 2866 §3 Request
    /// Authenticator MD5(Code + Identifier + Length + 16 zero octets + Attributes + Secret).
    ///
    /// Attributes follow the order of IOS's debug output (Acct-Session-Id, Cisco-AVPairs,
    /// Framed-IP-Address, User-Name, counters, Acct-Status-Type, cisco-nas-port, NAS-Port,
    /// NAS-IP-Address), then NAS-Identifier, Event-Timestamp (RFC 2869; constant across
    /// retransmissions, so the server can date the event even if it ignores the delay) and
    /// Acct-Delay-Time.
    ///
    /// Never fails: a string longer than its attribute can carry (253 octets, 247 inside a
    /// Cisco VSA) is cut at a UTF-8 boundary, and if the Cisco-AVPairs would push the packet
    /// over RADIUS's 4096 octets the last ones are left out; both are logged as warnings. The
    /// standard attributes alone always fit.
    pub fn encode(&self, identifier: u8, secret: &[u8], delay_secs: u32) -> Vec<u8> {
        let mut b = Builder {
            packet: Packet::new_with_identifier(Code::AccountingRequest, secret, identifier),
            len: HEADER_LEN,
        };

        let session_id = fit(&self.acct_session_id, MAX_STRING, "Acct-Session-Id");
        if !session_id.is_empty() {
            b.avp(
                AVP::from_string(rfc2866::ACCT_SESSION_ID_TYPE, session_id),
                session_id.len(),
            );
        }
        // The fixed-size attributes after the AVPairs, counted up front so the AVPairs can be
        // trimmed to what is left.
        let tail = self.fixed_tail_len();
        if self.send_vsas {
            let mut dropped = 0usize;
            for pair in &self.cisco_avpairs {
                let value = fit(pair, MAX_VSA_STRING, "Cisco-AVPair");
                if value.is_empty() {
                    continue;
                }
                let attr_len = 2 + 6 + value.len();
                if b.len + attr_len + tail > MAX_PACKET_LEN {
                    dropped += 1;
                    continue;
                }
                b.cisco(CISCO_AVPAIR, value);
            }
            if dropped > 0 {
                tracing::warn!(
                    session = %self.acct_session_id,
                    dropped,
                    "Cisco-AVPairs left out: the Accounting-Request would exceed 4096 octets"
                );
            }
        }
        if let Some(ip) = self.framed_ip {
            b.avp(AVP::from_ipv4(rfc2865::FRAMED_IP_ADDRESS_TYPE, &ip), 4);
        }
        if let Some(ip) = self.framed_ipv6 {
            b.avp(AVP::from_ipv6(rfc6911::FRAMED_IPV6_ADDRESS_TYPE, &ip), 16);
        }
        for class in &self.class {
            let class = &class[..class.len().min(MAX_STRING)];
            if !class.is_empty() {
                b.avp(AVP::from_bytes(rfc2865::CLASS_TYPE, class), class.len());
            }
        }
        if let Some(name) = self.user_name.as_deref() {
            let name = fit(name, MAX_STRING, "User-Name");
            if !name.is_empty() {
                b.avp(AVP::from_string(rfc2865::USER_NAME_TYPE, name), name.len());
            }
        }
        if let Some(t) = self.session_time {
            b.avp(AVP::from_u32(rfc2866::ACCT_SESSION_TIME_TYPE, t), 4);
        }
        if let Some(octets) = self.input_octets {
            let (low, giga) = crate::gigawords(octets);
            b.avp(AVP::from_u32(rfc2866::ACCT_INPUT_OCTETS_TYPE, low), 4);
            b.avp(AVP::from_u32(rfc2869::ACCT_INPUT_GIGAWORDS_TYPE, giga), 4);
        }
        if let Some(octets) = self.output_octets {
            let (low, giga) = crate::gigawords(octets);
            b.avp(AVP::from_u32(rfc2866::ACCT_OUTPUT_OCTETS_TYPE, low), 4);
            b.avp(AVP::from_u32(rfc2869::ACCT_OUTPUT_GIGAWORDS_TYPE, giga), 4);
        }
        if let Some(p) = self.input_packets {
            b.avp(
                AVP::from_u32(rfc2866::ACCT_INPUT_PACKETS_TYPE, saturate(p)),
                4,
            );
        }
        if let Some(p) = self.output_packets {
            b.avp(
                AVP::from_u32(rfc2866::ACCT_OUTPUT_PACKETS_TYPE, saturate(p)),
                4,
            );
        }
        if let Some(cause) = self.terminate_cause {
            b.avp(AVP::from_u32(rfc2866::ACCT_TERMINATE_CAUSE_TYPE, cause), 4);
        }
        b.avp(
            AVP::from_u32(rfc2866::ACCT_STATUS_TYPE_TYPE, self.status.code()),
            4,
        );
        if self.send_vsas {
            if let Some(port) = self.cisco_nas_port.as_deref() {
                let port = fit(port, MAX_VSA_STRING, "cisco-nas-port");
                if !port.is_empty() {
                    b.cisco(CISCO_NAS_PORT, port);
                }
            }
        }
        if let Some(port) = self.nas_port {
            b.avp(AVP::from_u32(rfc2865::NAS_PORT_TYPE, port), 4);
        }
        match self.nas_ip {
            Some(IpAddr::V4(ip)) => b.avp(AVP::from_ipv4(rfc2865::NAS_IP_ADDRESS_TYPE, &ip), 4),
            Some(IpAddr::V6(ip)) => b.avp(AVP::from_ipv6(rfc3162::NAS_IPV6_ADDRESS_TYPE, &ip), 16),
            None => {}
        }
        if let Some(id) = self.nas_identifier.as_deref() {
            let id = fit(id, MAX_STRING, "NAS-Identifier");
            if !id.is_empty() {
                b.avp(AVP::from_string(rfc2865::NAS_IDENTIFIER_TYPE, id), id.len());
            }
        }
        // Event-Timestamp is a 32-bit "date"; the crate's helper wants a chrono DateTime, the
        // plain integer AVP is the same four octets.
        b.avp(
            AVP::from_u32(EVENT_TIMESTAMP, unix_secs(self.event_time)),
            4,
        );
        b.avp(AVP::from_u32(rfc2866::ACCT_DELAY_TIME_TYPE, delay_secs), 4);
        debug_assert!(b.len <= MAX_PACKET_LEN);

        // Cannot fail: every attribute is at most 253 octets and the total at most 4096, the
        // two conditions under which the crate's encode() errs.
        b.packet
            .encode()
            .expect("Accounting-Request within RADIUS length limits")
    }

    /// Octets taken by the attributes encoded after the Cisco-AVPairs, at their longest.
    fn fixed_tail_len(&self) -> usize {
        let string = |s: Option<&str>, max: usize| s.map_or(0, |s| 2 + s.len().min(max));
        let mut n = 0;
        n += if self.framed_ip.is_some() { 6 } else { 0 };
        n += if self.framed_ipv6.is_some() { 18 } else { 0 };
        n += self
            .class
            .iter()
            .filter(|c| !c.is_empty())
            .map(|c| 2 + c.len().min(MAX_STRING))
            .sum::<usize>();
        n += string(self.user_name.as_deref(), MAX_STRING);
        n += 6 * [
            self.session_time.is_some(),
            self.input_packets.is_some(),
            self.output_packets.is_some(),
            self.terminate_cause.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        n += 12
            * [self.input_octets.is_some(), self.output_octets.is_some()]
                .iter()
                .filter(|b| **b)
                .count();
        n += 6; // Acct-Status-Type
        if self.send_vsas {
            n += self
                .cisco_nas_port
                .as_deref()
                .map_or(0, |s| 8 + s.len().min(MAX_VSA_STRING));
        }
        n += if self.nas_port.is_some() { 6 } else { 0 };
        n += match self.nas_ip {
            Some(IpAddr::V4(_)) => 6,
            Some(IpAddr::V6(_)) => 18,
            None => 0,
        };
        n += string(self.nas_identifier.as_deref(), MAX_STRING);
        n += 6 + 6; // Event-Timestamp, Acct-Delay-Time
        n
    }
}

const HEADER_LEN: usize = 20;
const MAX_PACKET_LEN: usize = 4096;
/// Longest value of a RADIUS attribute (RFC 2865 §5: Length is one octet, incl. type+length).
const MAX_STRING: usize = 253;
/// Longest value inside a Vendor-Specific attribute: 253 - vendor id (4) - vendor type/length (2).
const MAX_VSA_STRING: usize = 247;

/// The crate's packet plus the running length of its attributes: the crate only reports
/// "packet is too large" from `encode()`, and we want to trim AVPairs before that.
struct Builder {
    packet: Packet,
    len: usize,
}

impl Builder {
    fn avp(&mut self, avp: AVP, value_len: usize) {
        self.len += 2 + value_len;
        self.packet.add(avp);
    }

    fn cisco(&mut self, vendor_type: u8, value: &str) {
        self.len += 2 + 6 + value.len();
        rfc2865::add_vsa_attribute(
            &mut self.packet,
            &StringVSA::new(VENDOR_CISCO as i32, vendor_type, value),
        );
    }
}

/// `s` cut to at most `max` octets at a UTF-8 boundary. The crate's `StringVSA` would wrap its
/// one-octet length silently and `encode()` refuse the whole packet, so we cut first.
fn fit<'a>(s: &'a str, max: usize, what: &str) -> &'a str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    tracing::warn!(
        attribute = what,
        len = s.len(),
        max,
        "RADIUS attribute value truncated"
    );
    &s[..end]
}

fn saturate(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

pub(crate) fn unix_secs(t: SystemTime) -> u32 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
        .try_into()
        .unwrap_or(u32::MAX)
}
