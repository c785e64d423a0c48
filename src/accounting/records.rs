//! The Start, Interim-Update and Stop records of a session, with the attributes and Cisco
//! VSAs of IOS's IPsec VPN Accounting chapter (Tables 2 and 3, and its debug samples).
//!
//! Pure functions: the session as the accounting task knows it in, an [`AccountingRecord`]
//! out. Counters are the session's 64-bit totals (every SA it ever had); the encoder splits
//! octets into Acct-*-Octets and -Gigawords.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use vpnd_radius::{AccountingRecord, AcctStatus};

use crate::session::model::{Counted, Totals};

/// Why a session ended: Acct-Terminate-Cause (RFC 2866 5.10) and the Cisco
/// `disc-cause-ext` text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Cause {
    /// The peer deleted the SAs.
    UserRequest,
    /// The peer stopped answering (liveness check failed).
    LostCarrier,
    /// The IPsec SAs reached their hard lifetime.
    SessionTimeout,
    /// `clear crypto session`.
    AdminReset,
    /// vpnd was stopped.
    AdminReboot,
    /// vpnd died with the session up: found at the next start.
    NasReboot,
    /// A kernel or internal failure took the SAs down.
    NasError,
}

impl Cause {
    pub fn code(self) -> u32 {
        use vpnd_radius::terminate_cause as t;
        match self {
            Cause::UserRequest => t::USER_REQUEST,
            Cause::LostCarrier => t::LOST_CARRIER,
            Cause::SessionTimeout => t::SESSION_TIMEOUT,
            Cause::AdminReset => t::ADMIN_RESET,
            Cause::AdminReboot => t::ADMIN_REBOOT,
            Cause::NasReboot => t::NAS_REBOOT,
            Cause::NasError => t::NAS_ERROR,
        }
    }

    /// IOS's `disc-cause-ext` wording.
    pub fn text(self) -> &'static str {
        match self {
            Cause::UserRequest => "User Request",
            Cause::LostCarrier => "Lost Carrier",
            Cause::SessionTimeout => "Session Timeout",
            Cause::AdminReset => "Admin Reset",
            Cause::AdminReboot => "Admin Reboot",
            Cause::NasReboot => "NAS Reboot",
            Cause::NasError => "NAS Error",
        }
    }
}

/// What identifies a session in its records: everything a Start carries.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SessionIdentity {
    /// Acct-Session-Id: unique, the same in Start, Interims and Stop.
    pub id: String,
    /// User-Name: the peer's IKE identity (no XAUTH user in IKEv2 PSK).
    pub user_name: Option<String>,
    /// Framed-IP-Address: the address leased to the client (RFC 7296 3.15.4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framed_ip: Option<std::net::Ipv4Addr>,
    /// Framed-IPv6-Address (RFC 6911): the IPv6 address leased to the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framed_ipv6: Option<std::net::Ipv6Addr>,
    pub nas_ip: Option<IpAddr>,
    /// The peer's IKE address (`isakmp-initator-ip`, as IOS spells it on the wire).
    pub peer_ip: IpAddr,
    /// The inside VRF (`vrf-id`).
    pub ivrf: Option<String>,
    /// The VPN group (`isakmp-group-id`).
    pub group: Option<String>,
    /// The interface of the local IKE address (`cisco-nas-port`).
    pub interface: Option<String>,
    /// `radius-server vsa send accounting`.
    pub send_vsas: bool,
    /// Server groups, in failover order (one record per group when broadcasting).
    pub groups: Vec<String>,
    /// Unix time of the first IPsec SA pair: Acct-Session-Time counts from here.
    pub started: u64,
    /// The Access-Accept's Class attributes (EAP users), echoed in every record
    /// (RFC 2865 5.25).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub class: Vec<Vec<u8>>,
}

fn unix(t: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(t)
}

/// The attributes every record of the session carries (IOS Table 2), for `status` at `now`.
fn base(s: &SessionIdentity, status: AcctStatus, now: u64) -> AccountingRecord {
    let mut avpairs = Vec::new();
    if let Some(v) = &s.ivrf {
        avpairs.push(format!("vrf-id={v}"));
    }
    avpairs.push(format!("isakmp-initator-ip={}", s.peer_ip));
    if let Some(g) = &s.group {
        avpairs.push(format!("isakmp-group-id={g}"));
    }
    if let Some(id) = &s.user_name {
        avpairs.push(format!("isakmp-phase1-id={id}"));
    }
    avpairs.push("connect-progress=No Progress".into());
    AccountingRecord {
        user_name: s.user_name.clone(),
        framed_ip: s.framed_ip,
        framed_ipv6: s.framed_ipv6,
        class: s.class.clone(),
        nas_ip: s.nas_ip,
        nas_port: Some(0),
        cisco_avpairs: avpairs,
        cisco_nas_port: s.interface.clone(),
        send_vsas: s.send_vsas,
        groups: s.groups.clone(),
        ..AccountingRecord::new(status, s.id.clone(), unix(now))
    }
}

/// The counters and session time of Interims and Stops (IOS Table 3).
fn with_usage(
    mut r: AccountingRecord,
    s: &SessionIdentity,
    t: &Totals,
    now: u64,
) -> AccountingRecord {
    r.session_time = Some(u32::try_from(now.saturating_sub(s.started)).unwrap_or(u32::MAX));
    r.input_octets = Some(t.bytes_in);
    r.output_octets = Some(t.bytes_out);
    r.input_packets = Some(t.packets_in);
    r.output_packets = Some(t.packets_out);
    r
}

/// Accounting Start: the session's first IPsec SA pair is up, IKE complete.
pub fn start_record(s: &SessionIdentity) -> AccountingRecord {
    base(s, AcctStatus::Start, s.started)
}

/// Interim-Update (`aaa accounting update periodic`): usage so far.
pub fn interim_record(s: &SessionIdentity, t: &Totals, now: u64) -> AccountingRecord {
    with_usage(base(s, AcctStatus::InterimUpdate, now), s, t, now)
}

/// Accounting Stop: no IPsec SA pair is left. Usage over every SA the session had, the
/// terminate cause and its `disc-cause-ext` text.
pub fn stop_record(s: &SessionIdentity, t: &Totals, now: u64, cause: Cause) -> AccountingRecord {
    let mut r = with_usage(base(s, AcctStatus::Stop, now), s, t, now);
    r.terminate_cause = Some(cause.code());
    r.cisco_avpairs
        .push(format!("disc-cause-ext={}", cause.text()));
    r
}

/// The prepared Stop a crash sends (NAS-Reboot), with what its counters are the sum of, so
/// the next start can redo the sum with the kernel's counters (`with_kernel_readings`).
pub fn crash_stop(s: &SessionIdentity, c: &Counted, now: u64) -> AccountingRecord {
    let mut r = stop_record(s, &c.totals(), now, Cause::NasReboot);
    r.recovery = serde_json::to_value(c).ok();
    r
}

/// A crash Stop found at start, its counters redone with the final readings of its SAs
/// that the crash left in the kernel (`reading(spi)`: bytes, packets): what the session
/// carried up to the crash, not up to the Stop's last refresh. Returns whether they moved.
pub fn with_kernel_readings(
    mut r: AccountingRecord,
    reading: impl Fn(u32) -> Option<(u64, u64)>,
) -> (AccountingRecord, bool) {
    let counted = r
        .recovery
        .take()
        .and_then(|v| serde_json::from_value::<Counted>(v).ok());
    let Some(counted) = counted else {
        return (r, false);
    };
    let (now, moved) = counted.with_readings(reading);
    if moved == 0 {
        return (r, false);
    }
    let t = now.totals();
    // Never less than what the Stop said already (it is a sum of counters that only grow).
    let at_least = |new: u64, old: Option<u64>| Some(new.max(old.unwrap_or(0)));
    r.input_octets = at_least(t.bytes_in, r.input_octets);
    r.output_octets = at_least(t.bytes_out, r.output_octets);
    r.input_packets = at_least(t.packets_in, r.input_packets);
    r.output_packets = at_least(t.packets_out, r.output_packets);
    (r, true)
}

/// A Stop for a session known only by its journalled Start (and its last Interim, if one is
/// queued): vpnd died after the Start was written and before the session's crash Stop was.
/// NAS-Reboot, with the last counters known (zero without an Interim) and the Start's
/// identifying attributes, so the server can close the session it opened.
pub fn crash_stop_from(
    start: &AccountingRecord,
    last_interim: Option<&AccountingRecord>,
) -> AccountingRecord {
    let usage = last_interim.unwrap_or(start);
    let mut r = AccountingRecord {
        status: AcctStatus::Stop,
        session_time: Some(usage.session_time.unwrap_or(0)),
        input_octets: Some(usage.input_octets.unwrap_or(0)),
        output_octets: Some(usage.output_octets.unwrap_or(0)),
        input_packets: Some(usage.input_packets.unwrap_or(0)),
        output_packets: Some(usage.output_packets.unwrap_or(0)),
        terminate_cause: Some(Cause::NasReboot.code()),
        event_time: usage.event_time,
        ..start.clone()
    };
    r.cisco_avpairs
        .push(format!("disc-cause-ext={}", Cause::NasReboot.text()));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> SessionIdentity {
        SessionIdentity {
            id: "0000018C2A1B00001".into(),
            user_name: Some("peer1.lab.example".into()),
            framed_ip: None,
            framed_ipv6: None,
            nas_ip: Some("192.0.2.1".parse().unwrap()),
            peer_ip: "192.0.2.2".parse().unwrap(),
            ivrf: Some("cisco".into()),
            group: Some("cclient".into()),
            interface: Some("t0".into()),
            send_vsas: true,
            groups: vec!["radius".into()],
            started: 1_700_000_000,
            class: Vec::new(),
        }
    }

    #[test]
    fn start_carries_the_ios_identifying_attributes() {
        let r = start_record(&identity());
        assert_eq!(r.status, AcctStatus::Start);
        assert_eq!(r.user_name.as_deref(), Some("peer1.lab.example"));
        assert_eq!(r.nas_port, Some(0));
        assert_eq!(
            r.cisco_avpairs,
            [
                "vrf-id=cisco",
                "isakmp-initator-ip=192.0.2.2",
                "isakmp-group-id=cclient",
                "isakmp-phase1-id=peer1.lab.example",
                "connect-progress=No Progress"
            ]
        );
        assert_eq!(r.cisco_nas_port.as_deref(), Some("t0"));
        assert_eq!(r.session_time, None, "no usage in a Start");
        assert_eq!(r.input_octets, None);
        assert_eq!(r.event_time, unix(1_700_000_000));
        assert_eq!(r.groups, ["radius"]);
    }

    #[test]
    fn stop_has_usage_cause_and_the_same_session_id() {
        let t = Totals {
            bytes_in: (1 << 32) + 5,
            bytes_out: 420,
            packets_in: 7,
            packets_out: 5,
        };
        let r = stop_record(&identity(), &t, 1_700_000_709, Cause::AdminReset);
        assert_eq!(r.status, AcctStatus::Stop);
        assert_eq!(r.acct_session_id, start_record(&identity()).acct_session_id);
        assert_eq!(r.session_time, Some(709));
        assert_eq!(
            r.input_octets,
            Some((1 << 32) + 5),
            "64-bit: the encoder splits gigawords"
        );
        assert_eq!(r.output_packets, Some(5));
        assert_eq!(r.terminate_cause, Some(6));
        assert_eq!(
            r.cisco_avpairs.last().map(String::as_str),
            Some("disc-cause-ext=Admin Reset")
        );
        let i = interim_record(&identity(), &t, 1_700_000_109);
        assert_eq!(
            (i.status, i.session_time, i.terminate_cause),
            (AcctStatus::InterimUpdate, Some(109), None)
        );
    }

    #[test]
    fn a_crash_stop_from_a_start_is_the_stop_of_that_session() {
        let t = Totals {
            bytes_in: 9,
            bytes_out: 8,
            packets_in: 2,
            packets_out: 1,
        };
        let start = start_record(&identity());
        let stop = crash_stop_from(&start, None);
        let expected = stop_record(
            &identity(),
            &Totals::default(),
            1_700_000_000,
            Cause::NasReboot,
        );
        assert_eq!(stop, expected, "as if it had been prepared at the Start");
        let interim = interim_record(&identity(), &t, 1_700_000_060);
        assert_eq!(
            crash_stop_from(&start, Some(&interim)),
            stop_record(&identity(), &t, 1_700_000_060, Cause::NasReboot),
            "with the last Interim's counters"
        );
    }

    #[test]
    fn absent_values_leave_their_avpairs_out() {
        let s = SessionIdentity {
            ivrf: None,
            group: None,
            user_name: None,
            framed_ip: None,
            framed_ipv6: None,
            ..identity()
        };
        assert_eq!(
            start_record(&s).cisco_avpairs,
            [
                "isakmp-initator-ip=192.0.2.2",
                "connect-progress=No Progress"
            ]
        );
    }
}
