//! Remote-access clients against one gateway, in memory with a virtual clock: profiles
//! chosen by identity, addresses from pools (RFC 7296 3.15.4), leases across deletes, DPD,
//! restarts (INITIAL_CONTACT), IKE rekeys, and a long random run checking that no address is
//! ever leased twice.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::codec::{Identity, TrafficSelector};
use super::crypto::RngSource;
use super::endpoint::{Endpoint, Output};
use super::policy::{
    ChildPolicy, IdPattern, Mode, PeerPolicy, RemoteAccess, RemoteMatch, Retransmit,
};
use super::pool::AddressPool;
use super::proposal::{Proposal, ProposalKind};
use super::sa::DownReason;

struct Rng(u64);
impl RngSource for Rng {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), super::crypto::CryptoError> {
        for b in dest {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = self.0 as u8;
        }
        Ok(())
    }
}

const GW: &str = "192.0.2.1:500";
const PSK: &str = "a-remote-access-psk-0123";

fn ts(a: &str, b: &str) -> TrafficSelector {
    TrafficSelector::new(0, 0, 65535, a.parse().unwrap(), b.parse().unwrap()).unwrap()
}

fn policy(name: &str, remote: RemoteMatch, local_id: Identity, psk: &str) -> PeerPolicy {
    PeerPolicy {
        name: name.into(),
        remote,
        remote_port: 500,
        initial_contact: true,
        nat: Default::default(),
        remote_access: Default::default(),
        frag: Default::default(),
        local_id,
        remote_id: None,
        local_auth: crate::ike::LocalAuth::Psk(Zeroizing::new(psk.as_bytes().to_vec())),
        remote_auth: crate::ike::RemoteAuth::Psk(Zeroizing::new(psk.as_bytes().to_vec())),
        ike_proposals: vec![
            Proposal::parse("aes256gcm16-prfsha256-x25519", ProposalKind::Ike).unwrap(),
        ],
        ike_lifetime: Duration::from_secs(86400),
        dpd: Some(Duration::from_secs(30)),
        retransmit: Retransmit {
            timeout: Duration::from_secs(2),
            base: 1.8,
            tries: 3,
        },
        children: vec![ChildPolicy {
            name: "net".into(),
            local_ts: vec![],
            remote_ts: vec![],
            mode: Mode::Tunnel,
            esp: vec![Proposal::parse("aes256gcm16", ProposalKind::Esp).unwrap()],
            pfs: None,
            lifetime: Duration::from_secs(3600),
            lifetime_bytes: None,
            replay_window: 64,
        }],
    }
}

/// The gateway's profile: clients `*@{group}` from anywhere, addresses from `pool`.
fn profile(group: &str, pool: &str, psk: &str) -> PeerPolicy {
    let mut p = policy(
        group,
        RemoteMatch::Any,
        Identity::Fqdn("gw.example".into()),
        psk,
    );
    p.remote_access = RemoteAccess {
        identity: Some(IdPattern::new(&format!("*@{group}"))),
        pool: Some(pool.into()),
        pool6: None,
        dns: vec!["198.51.100.53".parse().unwrap()],
        request_address: false,
        request_ipv6: false,
    };
    p.children[0].local_ts = vec![ts("198.51.100.0", "198.51.100.127")];
    p.children[0].remote_ts = vec![ts("0.0.0.0", "255.255.255.255")];
    p
}

/// A road-warrior client (strongSwan's `vips = 0.0.0.0`).
fn client_policy(user: &str, psk: &str) -> PeerPolicy {
    let gw: SocketAddr = GW.parse().unwrap();
    let mut p = policy(
        "gw",
        RemoteMatch::Single(gw.ip()),
        Identity::UserFqdn(user.into()),
        psk,
    );
    p.remote_access.request_address = true;
    p.children[0].local_ts = vec![ts("0.0.0.0", "255.255.255.255")];
    p.children[0].remote_ts = vec![ts("198.51.100.0", "198.51.100.127")];
    p
}

struct Client {
    ep: Endpoint,
    at: SocketAddr,
    user: String,
    out: Vec<Output>,
    /// Unplugged: its datagrams are lost both ways.
    cut: bool,
}

/// One gateway and its clients, a wire between them, a clock.
struct Lan {
    gw: Endpoint,
    gw_out: Vec<Output>,
    clients: Vec<Client>,
    now: Instant,
    seed: u64,
}

impl Lan {
    fn new(profiles: Vec<PeerPolicy>, pools: Vec<AddressPool>) -> Lan {
        let mut gw = Endpoint::new(profiles, Box::new(Rng(7)));
        gw.set_pools(pools);
        Lan {
            gw,
            gw_out: Vec::new(),
            clients: Vec::new(),
            now: Instant::now(),
            seed: 100,
        }
    }

    fn add_client(&mut self, user: &str, psk: &str) -> usize {
        self.add_client_with(client_policy(user, psk), user)
    }

    fn add_client_with(&mut self, policy: PeerPolicy, user: &str) -> usize {
        let i = self.clients.len();
        let at: SocketAddr = format!("203.0.113.{}:500", 10 + i).parse().unwrap();
        self.seed += 1;
        self.clients.push(Client {
            ep: Endpoint::new(vec![policy], Box::new(Rng(self.seed))),
            at,
            user: user.into(),
            out: Vec::new(),
            cut: false,
        });
        i
    }

    /// The client's machine restarts: a fresh engine, no memory of its IKE SAs.
    fn restart(&mut self, i: usize, psk: &str) {
        self.seed += 1;
        let user = self.clients[i].user.clone();
        self.clients[i].ep =
            Endpoint::new(vec![client_policy(&user, psk)], Box::new(Rng(self.seed)));
    }

    fn connect(&mut self, i: usize) {
        let at = self.clients[i].at;
        self.clients[i].ep.initiate(self.now, "gw", at).unwrap();
        self.drive();
    }

    fn drive(&mut self) {
        let gw: SocketAddr = GW.parse().unwrap();
        for _ in 0..10_000 {
            let mut moved = false;
            for c in &mut self.clients {
                while let Some(o) = c.ep.poll_output() {
                    moved = true;
                    match o {
                        Output::Transmit(t) if !c.cut => {
                            self.gw.handle_datagram(self.now, gw, t.local, &t.data)
                        }
                        Output::Transmit(_) => {}
                        other => c.out.push(other),
                    }
                }
            }
            while let Some(o) = self.gw.poll_output() {
                moved = true;
                match o {
                    Output::Transmit(t) => {
                        if let Some(c) =
                            self.clients.iter_mut().find(|c| c.at == t.remote && !c.cut)
                        {
                            c.ep.handle_datagram(self.now, t.remote, t.local, &t.data);
                        }
                    }
                    other => self.gw_out.push(other),
                }
            }
            if !moved {
                return;
            }
        }
        panic!("no quiescence");
    }

    /// Advances the clock to the next timer anywhere and fires it.
    fn step_time(&mut self) -> bool {
        let next = std::iter::once(self.gw.poll_timeout())
            .chain(self.clients.iter().map(|c| c.ep.poll_timeout()))
            .flatten()
            .min();
        let Some(t) = next else { return false };
        self.now = self.now.max(t);
        self.gw.handle_timeout(self.now);
        for c in &mut self.clients {
            c.ep.handle_timeout(self.now);
        }
        self.drive();
        true
    }

    /// The address the client's live IKE SA was given, as the client saw it.
    fn address_of(&self, i: usize) -> Option<Ipv4Addr> {
        self.clients[i]
            .ep
            .sas()
            .filter(|s| s.is_established() && !s.is_dead())
            .find_map(|s| s.virtual_ip)
    }

    /// The IPv6 address the client's live IKE SA was given, as the client saw it.
    fn address6_of(&self, i: usize) -> Option<std::net::Ipv6Addr> {
        self.clients[i]
            .ep
            .sas()
            .filter(|s| s.is_established() && !s.is_dead())
            .find_map(|s| s.virtual_ip6)
    }

    fn pool(&self, name: &str) -> super::pool::PoolStats {
        self.gw
            .pool_stats()
            .into_iter()
            .find(|p| p.name == name)
            .unwrap()
    }

    /// What must hold after every event: the pool's books balance; every lease belongs to a
    /// live IKE SA of the gateway that knows its address; no address is held twice; each
    /// child's remote selector is its IKE SA's address.
    fn check(&self) {
        self.gw.pools().check().unwrap();
        let mut seen = HashSet::new();
        let mut leases = 0;
        for (owner, a) in self.gw.pools().owners() {
            leases += 1;
            let sa = self
                .gw
                .sa(owner)
                .unwrap_or_else(|| panic!("lease {a} of a forgotten SA"));
            assert!(!sa.is_dead());
            assert!(
                sa.virtual_ip.map(IpAddr::V4) == Some(a)
                    || sa.virtual_ip6.map(IpAddr::V6) == Some(a)
            );
            assert!(seen.insert(a), "{a} leased twice");
        }
        // Every live SA with an address holds its lease (a successor inherits it).
        let with_ip = self
            .gw
            .sas()
            .filter(|s| s.is_established() && s.virtual_ip.is_some() && s.rekeyed_to().is_none())
            .count();
        assert!(
            with_ip <= leases,
            "{with_ip} SAs with an address, {leases} leases"
        );
        for sa in self.gw.sas() {
            let mine: Vec<IpAddr> = [
                sa.virtual_ip.map(IpAddr::V4),
                sa.virtual_ip6.map(IpAddr::V6),
            ]
            .into_iter()
            .flatten()
            .collect();
            for c in &sa.children {
                assert!(!mine.is_empty(), "a child only with an address");
                assert!(c
                    .remote_ts
                    .iter()
                    .all(|t| t.start_addr() == t.end_addr() && mine.contains(&t.start_addr())));
            }
        }
    }
}

fn pool(name: &str, first: &str, last: &str) -> AddressPool {
    AddressPool {
        name: name.into(),
        first: first.parse().unwrap(),
        last: last.parse().unwrap(),
    }
}

fn notices(out: &[Output]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Output::Notice { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

fn one_gateway(size_last: &str) -> Lan {
    Lan::new(
        vec![profile("cclient", "addressA", PSK)],
        vec![pool("addressA", "10.13.13.1", size_last)],
    )
}

#[test]
fn three_clients_three_addresses_and_a_pool_of_two_refuses_the_third() {
    let mut lan = one_gateway("10.13.13.2");
    for u in ["joe@cclient", "ann@cclient", "bob@cclient"] {
        let i = lan.add_client(u, PSK);
        lan.connect(i);
        lan.check();
    }
    let (a, b) = (lan.address_of(0).unwrap(), lan.address_of(1).unwrap());
    assert_ne!(a, b);
    assert_eq!(lan.address_of(2), None, "the third got no address");
    // The gateway told the daemon which address each IKE SA has, and narrowed TSi to it.
    let ups: Vec<_> = lan
        .gw_out
        .iter()
        .filter_map(|o| match o {
            Output::IkeUp { virtual_ip, .. } => Some(*virtual_ip),
            _ => None,
        })
        .collect();
    assert_eq!(ups, vec![Some(IpAddr::V4(a)), Some(IpAddr::V4(b)), None]);
    let remote_ts: Vec<_> = lan
        .gw_out
        .iter()
        .filter_map(|o| match o {
            Output::InstallChild(c) => Some(c.remote_ts.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        remote_ts,
        vec![
            vec![ts("10.13.13.1", "10.13.13.1")],
            vec![ts("10.13.13.2", "10.13.13.2")]
        ]
    );
    // The third: refused clearly on both sides, its IKE SA up without a child (3.15.4).
    assert!(
        notices(&lan.clients[2].out)
            .iter()
            .any(|n| n.contains("INTERNAL_ADDRESS_FAILURE")),
        "{:?}",
        notices(&lan.clients[2].out)
    );
    let gw_notes = notices(&lan.gw_out);
    assert!(
        gw_notes.iter().any(
            |n| n.contains("address pool 'addressA' is exhausted") && n.contains("bob@cclient")
        ),
        "{gw_notes:?}"
    );
    let st = lan.pool("addressA");
    assert_eq!((st.free, st.in_use, st.refused), (0, 2, 1));
    // One leaves: its address is free again and the third gets it.
    let joe = lan.clients[0].ep.sas().next().unwrap().id;
    lan.clients[0].ep.delete(lan.now, joe).unwrap();
    lan.drive();
    lan.check();
    assert_eq!(lan.pool("addressA").in_use, 1);
    // Bob gives up the IKE SA that got no address (charon does) and tries again.
    let bob = lan.clients[2].ep.sas().next().unwrap().id;
    lan.clients[2].ep.delete(lan.now, bob).unwrap();
    lan.drive();
    lan.connect(2);
    lan.check();
    assert_eq!(lan.address_of(2), Some(a));
}

#[test]
fn the_profile_is_chosen_by_identity_and_a_stranger_is_refused() {
    let mut lan = Lan::new(
        vec![
            profile("staff", "staffpool", "staff-psk-0123456789"),
            profile("guest", "guestpool", "guest-psk-0123456789"),
        ],
        vec![
            pool("staffpool", "10.1.0.1", "10.1.0.9"),
            pool("guestpool", "10.2.0.1", "10.2.0.9"),
        ],
    );
    let g = lan.add_client("eve@guest", "guest-psk-0123456789");
    let s = lan.add_client("joe@staff", "staff-psk-0123456789");
    let x = lan.add_client("mallory@elsewhere", "staff-psk-0123456789");
    // Joe with the guests' key: authenticated against the staff profile, refused.
    let wrong = lan.add_client("joe@staff", "guest-psk-0123456789");
    for i in [g, s, x, wrong] {
        lan.connect(i);
    }
    assert_eq!(lan.address_of(g), Some("10.2.0.1".parse().unwrap()));
    assert_eq!(lan.address_of(s), Some("10.1.0.1".parse().unwrap()));
    let peer_of = |lan: &Lan, i: usize| {
        lan.gw
            .sas()
            .find(|sa| sa.remote == lan.clients[i].at)
            .map(|sa| sa.peer.name.clone())
    };
    assert_eq!(peer_of(&lan, g).as_deref(), Some("guest"));
    assert_eq!(peer_of(&lan, s).as_deref(), Some("staff"));
    for i in [x, wrong] {
        assert_eq!(lan.address_of(i), None);
        assert!(
            lan.clients[i].ep.sas().next().is_none(),
            "refused: no IKE SA"
        );
        assert!(peer_of(&lan, i).is_none());
    }
    // Each refusal is the IKE SA's end, with the reason the daemon logs.
    let reasons: Vec<String> = lan
        .gw_out
        .iter()
        .filter_map(|o| match o {
            Output::IkeDown { reason, .. } => Some(reason.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons[0].contains("is not the configured") && reasons[0].contains("mallory@elsewhere"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].contains("does not verify with the PSK"),
        "{reasons:?}"
    );
    // Both counted as authentication refusals of their kind (`show crypto isakmp stats`).
    let refused = &lan.gw.auth_stats().refused;
    assert_eq!(refused.get("wrong_identity"), Some(&1), "{refused:?}");
    assert_eq!(lan.pool("staffpool").in_use, 1);
    lan.check();
}

#[test]
fn a_client_without_a_cp_request_is_refused_its_child_only() {
    let mut lan = one_gateway("10.13.13.9");
    let i = lan.add_client("joe@cclient", PSK);
    let mut p = client_policy("joe@cclient", PSK);
    p.remote_access.request_address = false;
    lan.clients[i].ep = Endpoint::new(vec![p], Box::new(Rng(55)));
    lan.connect(i);
    assert!(notices(&lan.clients[i].out)
        .iter()
        .any(|n| n.contains("FAILED_CP_REQUIRED")));
    assert_eq!(lan.pool("addressA").in_use, 0);
    lan.check();
}

#[test]
fn the_same_identity_gets_its_address_back_and_a_restart_takes_over_its_lease() {
    let mut lan = one_gateway("10.13.13.9");
    let joe = lan.add_client("joe@cclient", PSK);
    let ann = lan.add_client("ann@cclient", PSK);
    lan.connect(joe);
    let first = lan.address_of(joe).unwrap();
    // Joe leaves, Ann comes, Joe comes back: his old address.
    let id = lan.clients[joe].ep.sas().next().unwrap().id;
    lan.clients[joe].ep.delete(lan.now, id).unwrap();
    lan.drive();
    lan.connect(ann);
    lan.connect(joe);
    assert_eq!(lan.address_of(joe), Some(first));
    lan.check();
    // Joe's machine restarts: its INITIAL_CONTACT ends the stale IKE SA, and the new one
    // gets the same address at once, though the old lease had not ended yet.
    lan.restart(joe, PSK);
    lan.connect(joe);
    assert_eq!(lan.address_of(joe), Some(first));
    assert!(lan.gw_out.iter().any(|o| matches!(
        o,
        Output::IkeDown {
            reason: DownReason::PeerRestarted,
            ..
        }
    )));
    assert_eq!(lan.pool("addressA").in_use, 2);
    lan.check();
}

#[test]
fn the_lease_follows_ike_rekeys_and_ends_with_dpd() {
    let mut lan = one_gateway("10.13.13.9");
    let i = lan.add_client("joe@cclient", PSK);
    lan.connect(i);
    let a = lan.address_of(i).unwrap();
    // The gateway rekeys the IKE SA twice: the successor holds the lease.
    for _ in 0..2 {
        let id = lan.gw.sas().find(|s| s.is_established()).unwrap().id;
        lan.gw.rekey_ike(lan.now, id).unwrap();
        lan.drive();
        lan.check();
        let live: Vec<_> = lan.gw.sas().filter(|s| !s.is_dead()).collect();
        assert_eq!(live.len(), 1);
        assert_ne!(live[0].id, id);
        assert_eq!(
            lan.gw.pools().of(live[0].id, super::pool::Family::Ipv4),
            Some(IpAddr::V4(a))
        );
    }
    assert_eq!(lan.pool("addressA").in_use, 1);
    // The client's cable is pulled: DPD gives up and the address goes back.
    lan.clients[i].cut = true;
    for _ in 0..200 {
        if lan.gw.sas().next().is_none() {
            break;
        }
        lan.step_time();
    }
    assert!(lan.gw.sas().next().is_none(), "DPD ended the IKE SA");
    assert_eq!(lan.pool("addressA").in_use, 0);
    lan.check();
}

/// Thousands of connects, leaves, restarts, rekeys and lost cables among 12 clients for a
/// pool of 8: after every event no address is leased twice and every lease is a live SA's.
#[test]
fn pool_invariants_hold_over_a_long_random_run() {
    let mut lan = one_gateway("10.13.13.8");
    let n = 12;
    for k in 0..n {
        lan.add_client(&format!("user{k}@cclient"), PSK);
    }
    let mut r = Rng(0x5eed);
    let mut roll = |m: u64| {
        let mut b = [0u8; 8];
        r.fill(&mut b).unwrap();
        u64::from_le_bytes(b) % m
    };
    let mut granted = 0;
    for _ in 0..3000 {
        let i = roll(n as u64) as usize;
        match roll(10) {
            0..=3 => {
                lan.clients[i].cut = false;
                if lan.clients[i].ep.sas().next().is_none() {
                    lan.connect(i);
                    granted += usize::from(lan.address_of(i).is_some());
                }
            }
            4..=5 => {
                let id = lan.clients[i].ep.sas().map(|s| s.id).next();
                if let Some(id) = id {
                    let _ = lan.clients[i].ep.delete(lan.now, id);
                    lan.drive();
                }
            }
            6 => {
                lan.restart(i, PSK);
                lan.clients[i].cut = false;
                lan.connect(i);
            }
            7 if roll(2) == 0 => {
                // The client rekeys its IKE SA (the responder's side of the hand-over).
                let id = lan.clients[i]
                    .ep
                    .sas()
                    .filter(|s| s.is_established())
                    .map(|s| s.id)
                    .next();
                if let Some(id) = id {
                    let _ = lan.clients[i].ep.rekey_ike(lan.now, id);
                    lan.drive();
                }
            }
            7 => {
                let id = lan
                    .gw
                    .sas()
                    .filter(|s| s.is_established())
                    .map(|s| s.id)
                    .next();
                if let Some(id) = id {
                    let _ = lan.gw.rekey_ike(lan.now, id);
                    lan.drive();
                }
            }
            8 => lan.clients[i].cut = true,
            _ => {
                lan.now += Duration::from_secs(roll(40));
                lan.step_time();
            }
        }
        lan.check();
        let st = lan.pool("addressA");
        assert_eq!(st.free + u64::from(st.in_use), 8);
    }
    assert!(
        granted > 100,
        "the run exercised the pool: {granted} grants"
    );
}

/// A dual-stack profile: IPv4 from `addressA`, IPv6 from `v6`, DNS of both families, and
/// selectors of both on the protected side.
fn dual_profile() -> PeerPolicy {
    let mut p = profile("cclient", "addressA", PSK);
    p.remote_access.pool6 = Some("v6".into());
    p.remote_access.dns.push("2001:db8::53".parse().unwrap());
    p.children[0]
        .local_ts
        .push(ts("2001:db8:100::", "2001:db8:100::ffff"));
    p.children[0]
        .remote_ts
        .push(ts("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
    p
}

/// A dual-stack road warrior (strongSwan's `vips = 0.0.0.0, ::`).
fn dual_client(user: &str) -> PeerPolicy {
    let mut p = client_policy(user, PSK);
    p.remote_access.request_ipv6 = true;
    p.children[0]
        .local_ts
        .push(ts("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
    p.children[0]
        .remote_ts
        .push(ts("2001:db8:100::", "2001:db8:100::ffff"));
    p
}

#[test]
fn a_dual_stack_client_gets_both_families_and_a_full_ipv6_pool_leaves_it_ipv4() {
    let mut lan = Lan::new(
        vec![dual_profile()],
        vec![
            pool("addressA", "10.13.13.1", "10.13.13.9"),
            pool("v6", "2001:db8:77::1", "2001:db8:77::2"),
        ],
    );
    for u in ["joe@cclient", "ann@cclient", "bob@cclient"] {
        let i = lan.add_client_with(dual_client(u), u);
        lan.connect(i);
        lan.check();
    }
    let v6 = |s: &str| s.parse::<std::net::Ipv6Addr>().unwrap();
    assert_eq!(lan.address_of(0), Some(Ipv4Addr::new(10, 13, 13, 1)));
    assert_eq!(lan.address6_of(0), Some(v6("2001:db8:77::1")));
    assert_eq!(lan.address6_of(1), Some(v6("2001:db8:77::2")));
    // The third: its IPv4 address, no IPv6 one (the pool is full), logged and counted.
    assert_eq!(lan.address_of(2), Some(Ipv4Addr::new(10, 13, 13, 3)));
    assert_eq!(lan.address6_of(2), None);
    let notes = notices(&lan.gw_out);
    assert!(
        notes
            .iter()
            .any(|n| n.contains("address pool 'v6' is exhausted")
                && n.contains("no IPv6 address")
                && n.contains("bob@cclient")
                && n.contains("other family only")),
        "{notes:?}"
    );
    let st = lan.pool("v6");
    assert_eq!(
        (st.family, st.free, st.in_use, st.refused),
        (super::pool::Family::Ipv6, 0, 2, 1)
    );
    // The gateway's daemon heard both addresses; each child's TSi is exactly the leases.
    let ups: Vec<_> = lan
        .gw_out
        .iter()
        .filter_map(|o| match o {
            Output::IkeUp {
                virtual_ip,
                virtual_ip6,
                ..
            } => Some((*virtual_ip, *virtual_ip6)),
            _ => None,
        })
        .collect();
    assert_eq!(
        ups[0],
        (
            Some("10.13.13.1".parse().unwrap()),
            Some(v6("2001:db8:77::1"))
        )
    );
    assert_eq!(ups[2].1, None);
    let remote_ts: Vec<_> = lan
        .gw_out
        .iter()
        .filter_map(|o| match o {
            Output::InstallChild(c) => Some(c.remote_ts.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        remote_ts[0],
        vec![
            ts("10.13.13.1", "10.13.13.1"),
            ts("2001:db8:77::1", "2001:db8:77::1")
        ]
    );
    assert_eq!(remote_ts[2], vec![ts("10.13.13.3", "10.13.13.3")]);
    // Joe leaves: both his leases go back, and the next dual-stack client gets his IPv6 one.
    let joe = lan.clients[0].ep.sas().next().unwrap().id;
    lan.clients[0].ep.delete(lan.now, joe).unwrap();
    lan.drive();
    lan.check();
    assert_eq!((lan.pool("v6").in_use, lan.pool("addressA").in_use), (1, 2));
    let i = lan.add_client_with(dual_client("eve@cclient"), "eve@cclient");
    lan.connect(i);
    lan.check();
    assert_eq!(lan.address6_of(i), Some(v6("2001:db8:77::1")));
}

#[test]
fn both_families_exhausted_refuse_the_child_and_a_family_without_a_pool_is_not_given() {
    let mut lan = Lan::new(
        vec![dual_profile()],
        vec![
            pool("addressA", "10.13.13.1", "10.13.13.1"),
            pool("v6", "2001:db8:77::1", "2001:db8:77::1"),
        ],
    );
    let joe = lan.add_client_with(dual_client("joe@cclient"), "joe@cclient");
    lan.connect(joe);
    let ann = lan.add_client_with(dual_client("ann@cclient"), "ann@cclient");
    lan.connect(ann);
    lan.check();
    assert_eq!((lan.address_of(ann), lan.address6_of(ann)), (None, None));
    assert!(
        notices(&lan.clients[ann].out)
            .iter()
            .any(|n| n.contains("INTERNAL_ADDRESS_FAILURE")),
        "{:?}",
        notices(&lan.clients[ann].out)
    );
    assert_eq!(
        (lan.pool("addressA").refused, lan.pool("v6").refused),
        (1, 1)
    );
    // A dual-stack client of an IPv4-only profile: IPv4 only, its IPv6 request ignored.
    let mut lan = one_gateway("10.13.13.9");
    let i = lan.add_client_with(dual_client("joe@cclient"), "joe@cclient");
    lan.connect(i);
    lan.check();
    assert_eq!(
        (lan.address_of(i), lan.address6_of(i)),
        (Some(Ipv4Addr::new(10, 13, 13, 1)), None)
    );
}

#[test]
fn a_reload_shrinks_a_pool_under_connected_clients_without_giving_their_addresses_away() {
    let mut lan = one_gateway("10.13.13.4");
    for u in ["joe@cclient", "ann@cclient", "bob@cclient"] {
        let i = lan.add_client(u, PSK);
        lan.connect(i);
    }
    let held: Vec<_> = (0..3).map(|i| lan.address_of(i).unwrap()).collect();
    // Shrunk to two addresses: the third client keeps 10.13.13.3 (outside now).
    lan.gw
        .set_pools(vec![pool("addressA", "10.13.13.1", "10.13.13.2")]);
    lan.check();
    assert_eq!(lan.gw.pool_extras(), (0, 1));
    let st = lan.pool("addressA");
    assert_eq!((st.free, st.in_use), (0, 2));
    let i = lan.add_client("eve@cclient", PSK);
    lan.connect(i);
    assert_eq!(lan.address_of(i), None, "full after the shrink");
    // Grown again, past the kept lease: new clients get new addresses, never a held one.
    lan.gw
        .set_pools(vec![pool("addressA", "10.13.13.1", "10.13.13.9")]);
    lan.check();
    assert_eq!(lan.gw.pool_extras(), (0, 0));
    let eve = lan.clients[i].ep.sas().next().unwrap().id;
    lan.clients[i].ep.delete(lan.now, eve).unwrap();
    lan.drive();
    lan.connect(i);
    lan.check();
    let got = lan.address_of(i).unwrap();
    assert!(!held.contains(&got), "{got} was held");
    for (k, a) in held.iter().enumerate() {
        assert_eq!(lan.address_of(k), Some(*a), "kept across both reloads");
    }
}

#[test]
fn a_session_timeout_outlives_ike_rekeys_and_ends_the_session_at_its_time() {
    let mut lan = one_gateway("10.13.13.9");
    let i = lan.add_client("joe@cclient", PSK);
    lan.connect(i);
    let start = lan.now;
    let id = lan.gw.sas().find(|s| s.is_established()).unwrap().id;
    let end = start + Duration::from_secs(100);
    assert!(lan.gw.set_session_deadline(lan.now, id, end));
    // Two IKE SA rekeys before the deadline, the second by the client: the successor
    // carries it.
    lan.now += Duration::from_secs(10);
    lan.gw.rekey_ike(lan.now, id).unwrap();
    lan.drive();
    let id2 = lan
        .gw
        .sas()
        .find(|s| s.is_established() && s.rekeyed_to().is_none())
        .unwrap()
        .id;
    assert_ne!(id, id2);
    lan.now += Duration::from_secs(10);
    let cid = lan.clients[i]
        .ep
        .sas()
        .find(|s| s.is_established() && s.rekeyed_to().is_none())
        .unwrap()
        .id;
    lan.clients[i].ep.rekey_ike(lan.now, cid).unwrap();
    lan.drive();
    let live: Vec<_> = lan
        .gw
        .sas()
        .filter(|s| !s.is_dead() && s.rekeyed_to().is_none())
        .collect();
    assert_eq!(live.len(), 1);
    assert_eq!(
        live[0].session_deadline,
        Some(end),
        "the successor has the session's end"
    );
    lan.check();
    // Time runs (DPD exchanges meanwhile); nothing ends before the deadline.
    while lan.now < end {
        assert!(lan.step_time());
        let early = lan.gw_out.iter().any(|o| {
            matches!(
                o,
                Output::IkeDown {
                    reason: DownReason::SessionTimeout,
                    ..
                }
            )
        });
        assert!(!early || lan.now >= end, "ended at {:?}", lan.now - start);
    }
    assert_eq!(lan.now, end, "a deadline of its own, not a later timer's");
    let downs: Vec<_> = lan
        .gw_out
        .iter()
        .filter_map(|o| match o {
            Output::IkeDown {
                reason,
                was_up: true,
                ..
            } => Some(reason.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        downs
            .iter()
            .filter(|r| **r == DownReason::SessionTimeout)
            .count(),
        1,
        "{downs:?}"
    );
    // The client heard the Delete; the lease is free.
    assert!(lan.clients[i].out.iter().any(|o| matches!(
        o,
        Output::IkeDown {
            reason: DownReason::PeerDelete,
            ..
        }
    )));
    assert_eq!(lan.pool("addressA").in_use, 0);
    lan.check();
}
