//! The file layer: the YAML as written, with source locations.
//!
//! Every scalar that needs more than serde's parsing (durations, addresses, identities,
//! proposals, traffic selectors) is kept as `Spanned<String>` so validation can point at it.
//! Every field is optional here; `validate` applies defaults and reports missing required
//! keys against the enclosing mapping, so all problems are collected, not only the first.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{
    AccountingMode, Facility, LogLevel, Mode, StartAction, SyslogTransport, Unprotected, WhenFull,
};

pub(super) type S<T> = Spanned<T>;
pub(super) type Str = Spanned<String>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileConfig {
    pub local: Option<S<LocalFile>>,
    pub control: Option<S<ControlFile>>,
    pub metrics: Option<S<MetricsFile>>,
    pub log: Option<S<LogFile>>,
    pub syslog: Option<S<SyslogFile>>,
    pub radius: Option<S<RadiusFile>>,
    pub accounting: Option<S<AccountingFile>>,
    pub ike_defaults: Option<S<IkeFile>>,
    pub dos: Option<S<DosFile>>,
    /// Inside VRFs of route-based peers: name → routing table.
    pub vrfs: Option<S<BTreeMap<String, S<u32>>>>,
    /// CAs and CRLs that peers' certificates are checked against (IOS trustpoints).
    pub trustpoints: Vec<S<TrustPointFile>>,
    pub peers: Vec<S<PeerFile>>,
    /// Address pools (IOS `ip local pool NAME FIRST LAST`): name → range.
    pub pools: Option<S<BTreeMap<String, S<PoolFile>>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct PoolFile {
    pub begin: Option<Str>,
    pub end: Option<Str>,
    /// Instead of begin/end: every address of the prefix but its first.
    pub prefix: Option<Str>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct TrustPointFile {
    pub name: Option<Str>,
    pub cas: Option<S<Vec<Str>>>,
    pub crls: Option<S<Vec<Str>>>,
}

/// `auth: { local: psk|pubkey, remote: psk|pubkey|eap-radius }` (strongSwan's words), with
/// EAP's RADIUS group and where the EAP identity comes from.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct AuthFile {
    pub local: Option<Str>,
    pub remote: Option<Str>,
    pub radius_group: Option<Str>,
    pub eap_identity: Option<S<EapIdentityFile>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct LocalFile {
    pub addresses: Option<S<Vec<Str>>>,
    pub port: Option<S<u16>>,
    pub nat_t_port: Option<S<u16>>,
    pub nas_ip: Option<Str>,
    pub reqid_base: Option<Str>,
}

/// `dos:`, the responder's IKE_SA_INIT flood bounds (strongSwan's charon.cookie_threshold,
/// block_threshold, init_limit_half_open, half_open_timeout).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct DosFile {
    pub cookie_threshold: Option<S<u32>>,
    pub block_threshold: Option<S<u32>>,
    pub half_open_limit: Option<S<u32>>,
    pub half_open_timeout: Option<Str>,
    pub cookie_secret_lifetime: Option<Str>,
    pub cookie_secret_uses: Option<S<u32>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct ControlFile {
    pub socket: Option<Str>,
    pub group: Option<Str>,
    pub admin_group: Option<Str>,
    pub mode: Option<Str>,
    pub max_clients: Option<S<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct MetricsFile {
    pub listen: Option<Str>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct LogFile {
    pub level: Option<LogLevel>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct SyslogFile {
    pub local: Option<bool>,
    pub facility: Option<Facility>,
    pub timezone: Option<super::SyslogTimezone>,
    pub servers: Vec<S<SyslogServerFile>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct SyslogServerFile {
    pub address: Option<Str>,
    pub port: Option<S<u16>>,
    pub transport: Option<SyslogTransport>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RadiusFile {
    pub servers: Vec<S<RadiusServerFile>>,
    pub timeout: Option<Str>,
    pub retransmit: Option<S<u32>>,
    pub dead_time: Option<Str>,
    pub vsa_send_accounting: Option<bool>,
    pub groups: BTreeMap<String, S<Vec<Str>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RadiusServerFile {
    pub name: Option<Str>,
    pub address: Option<Str>,
    pub auth_port: Option<S<u16>>,
    pub acct_port: Option<S<u16>>,
    pub key: Option<Str>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct AccountingFile {
    pub update_periodic: Option<Str>,
    pub journal: Option<Str>,
    pub outbox_limit: Option<S<u64>>,
    pub when_full: Option<WhenFull>,
    pub lists: BTreeMap<String, S<AccountingListFile>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct AccountingListFile {
    pub mode: Option<AccountingMode>,
    pub broadcast: Option<bool>,
    pub groups: Option<S<Vec<Str>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct IkeFile {
    pub proposals: Option<S<Vec<Str>>>,
    pub lifetime: Option<Str>,
    pub dpd: Option<Str>,
    pub retransmit: Option<S<RetransmitFile>>,
    pub encap: Option<S<bool>>,
    pub nat_keepalive: Option<Str>,
    pub fragmentation: Option<S<bool>>,
    pub fragment_size: Option<S<u32>>,
    /// Opt into SHA-1 and MODP 1024 in the proposals (Windows' built-in client).
    pub allow_legacy: Option<S<bool>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RetransmitFile {
    pub timeout: Option<Str>,
    pub base: Option<S<f64>>,
    pub tries: Option<S<u32>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct PeerFile {
    pub name: Option<Str>,
    pub address: Option<Str>,
    pub port: Option<S<u16>>,
    pub description: Option<Str>,
    pub local_id: Option<Str>,
    pub remote_id: Option<Str>,
    pub psk: Option<Str>,
    pub psk_file: Option<Str>,
    pub auth: Option<S<AuthFile>>,
    pub certificate: Option<Str>,
    pub private_key: Option<Str>,
    pub trustpoint: Option<Str>,
    pub start: Option<S<StartAction>>,
    pub unprotected: Option<S<Unprotected>>,
    pub reverse_route: Option<S<ReverseRouteFile>>,
    pub interface: Option<Str>,
    pub if_id: Option<S<u32>>,
    pub fvrf: Option<Str>,
    pub ivrf: Option<Str>,
    pub group: Option<Str>,
    pub accounting: Option<Str>,
    pub pool: Option<Str>,
    pub ipv6_pool: Option<Str>,
    pub dns: Option<S<Vec<Str>>>,
    pub ike: Option<S<IkeFile>>,
    pub children: Option<S<Vec<S<ChildFile>>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum EapIdentityFile {
    IkeId,
    Request,
}

/// `reverse_route: true`, or a mapping with its options (which turns it on).
#[derive(Debug)]
pub(super) enum ReverseRouteFile {
    Flag(bool),
    With(ReverseRouteOptions),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct ReverseRouteOptions {
    pub table: Option<S<u32>>,
    pub metric: Option<S<u32>>,
    pub remote_peer: Option<S<bool>>,
}

impl<'de> Deserialize<'de> for ReverseRouteFile {
    // By hand: serde's untagged enums buffer their input and lose the spans inside.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ReverseRouteFile;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("true, false, or a mapping with table, metric, remote_peer")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(ReverseRouteFile::Flag(v))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                m: A,
            ) -> Result<Self::Value, A::Error> {
                ReverseRouteOptions::deserialize(serde::de::value::MapAccessDeserializer::new(m))
                    .map(ReverseRouteFile::With)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct ChildFile {
    pub name: Option<Str>,
    pub local_ts: Option<S<Vec<Str>>>,
    pub remote_ts: Option<S<Vec<Str>>>,
    pub mode: Option<S<Mode>>,
    pub esp: Option<S<Vec<Str>>>,
    pub pfs: Option<Str>,
    pub lifetime: Option<S<ChildLifetimeFile>>,
    pub replay_window: Option<S<u32>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct ChildLifetimeFile {
    pub seconds: Option<Str>,
    pub kilobytes: Option<S<u64>>,
}
