//! Address pools (IOS `ip local pool`, `ipv6 local pool`) and their leases, owned by the
//! engine: a lease belongs to one IKE SA, from its IKE_AUTH (RFC 7296 3.15.4) until it ends
//! (delete, DPD, expiry, INITIAL_CONTACT, Session-Timeout); an IKE SA rekey hands it to the
//! successor. The endpoint releases a dead SA's leases when it forgets the SA, so no path
//! that ends an SA can leak one. An IKE SA holds at most one lease per family (a
//! dual-stack client asks for INTERNAL_IP4_ADDRESS and INTERNAL_IP6_ADDRESS, 3.15.1).
//!
//! Hand-written: no crate keeps leases tied to a protocol engine's SAs; the allocator itself
//! is a round-robin cursor over a range (IPv4 and IPv6 alike, as `u128`), plus a bounded
//! memory of which address each identity last had, so a client that reconnects gets it
//! back when it is free. A search for a free address probes at most one address more than
//! the pool has leases, so even a /64 costs only what is leased.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::codec::Identity;
use super::endpoint::IkeSaId;

/// The largest IPv4 pool: 2^20 addresses (a /12).
pub const MAX_POOL_SIZE: u32 = 1 << 20;
/// The largest IPv6 pool: a /64 (what `show ip local pool` can count in a `u64`).
pub const MAX_POOL6_PREFIX: u8 = 64;

/// An address family: a pool has one, an IKE SA holds a lease of each at most.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    pub fn of(a: IpAddr) -> Family {
        match a {
            IpAddr::V4(_) => Family::Ipv4,
            IpAddr::V6(_) => Family::Ipv6,
        }
    }
}

/// A named range, both ends included and of one family (`ip local pool NAME FIRST LAST`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressPool {
    pub name: String,
    pub first: IpAddr,
    pub last: IpAddr,
}

/// Where an IKE SA's address of one family comes from: the profile's pool, or what the
/// authentication step supplied (RADIUS Framed-IP-Address, RFC 2865 5.8; Framed-Pool, RFC
/// 2869 5.23), which overrides the profile's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddressRequest {
    Pool(String),
    Fixed(IpAddr),
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    #[error("no address pool named '{0}'")]
    UnknownPool(String),
    #[error("address pool '{0}' is exhausted")]
    Exhausted(String),
    #[error("address {0} is leased to another session")]
    Taken(IpAddr),
}

/// One pool's figures, as `show ip local pool` prints them.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PoolStats {
    pub name: String,
    /// Absent in answers of a vpnd from before IPv6 pools: IPv4.
    #[serde(default = "ipv4")]
    pub family: Family,
    pub begin: IpAddr,
    pub end: IpAddr,
    /// Saturating (a /64 has 2^64 addresses).
    pub free: u64,
    pub in_use: u32,
    /// Clients refused because the pool was full (INTERNAL_ADDRESS_FAILURE).
    pub refused: u64,
}

fn ipv4() -> Family {
    Family::Ipv4
}

fn num(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn addr(family: Family, n: u128) -> IpAddr {
    match family {
        Family::Ipv4 => IpAddr::V4(Ipv4Addr::from(n as u32)),
        Family::Ipv6 => IpAddr::V6(Ipv6Addr::from(n)),
    }
}

struct Pool {
    name: String,
    family: Family,
    first: u128,
    last: u128,
    /// Where the next search for a free address starts: round robin, so a released
    /// address is the last to be given to someone else (its owner may come back).
    cursor: u128,
    in_use: u32,
    refused: u64,
}

impl Pool {
    fn size(&self) -> u128 {
        self.last - self.first + 1
    }
    fn contains(&self, a: IpAddr) -> bool {
        Family::of(a) == self.family && (self.first..=self.last).contains(&num(a))
    }
}

struct Lease {
    owner: IkeSaId,
    identity: Identity,
    /// The pool it came from (or lies in); None for a fixed address from outside every
    /// pool, or one a reload left outside every pool.
    pool: Option<usize>,
}

/// Every pool and every lease: one address is leased at most once, whichever pool or
/// fixed request it came from.
#[derive(Default)]
pub struct Pools {
    pools: Vec<Pool>,
    leases: BTreeMap<IpAddr, Lease>,
    by_owner: HashMap<(IkeSaId, Family), IpAddr>,
    /// The address each identity had last, per family (bounded: oldest forgotten first).
    last_of: HashMap<(Identity, Family), IpAddr>,
    last_order: VecDeque<(Identity, Family)>,
    /// Clients refused because RADIUS named a pool that is not configured (Framed-Pool).
    unknown_refused: u64,
}

/// Identities remembered for their last address, at most.
const REMEMBERED: usize = 65_536;

/// The pools that are well formed: names unique, ranges ordered, of one family and bounded
/// (the configuration checks it, and this re-checks: a pool that is not is left out).
fn build(pools: Vec<AddressPool>) -> Vec<Pool> {
    let mut out: Vec<Pool> = Vec::new();
    for p in pools {
        let family = Family::of(p.first);
        let (first, last) = (num(p.first), num(p.last));
        let bounded = match family {
            Family::Ipv4 => last.wrapping_sub(first) < u128::from(MAX_POOL_SIZE),
            Family::Ipv6 => last.wrapping_sub(first) <= u128::from(u64::MAX),
        };
        if Family::of(p.last) != family
            || first > last
            || !bounded
            || out.iter().any(|o| o.name == p.name)
        {
            continue;
        }
        out.push(Pool {
            name: p.name,
            family,
            first,
            last,
            cursor: first,
            in_use: 0,
            refused: 0,
        });
    }
    out
}

impl Pools {
    pub fn new(pools: Vec<AddressPool>) -> Pools {
        Pools {
            pools: build(pools),
            ..Pools::default()
        }
    }

    /// A reload's pools (issue 14): pools kept by name keep their counters and cursor; every
    /// lease stays with its session, counted in the pool that now holds its address, or in
    /// none when a shrunk or removed pool left it outside (it is still never given to
    /// anyone else, as every address leased is, until its session ends).
    pub fn reconfigure(&mut self, pools: Vec<AddressPool>) {
        let mut new = build(pools);
        for p in &mut new {
            if let Some(old) = self.pools.iter().find(|o| o.name == p.name) {
                p.refused = old.refused;
                if old.family == p.family && (p.first..=p.last).contains(&old.cursor) {
                    p.cursor = old.cursor;
                }
            }
        }
        self.pools = new;
        for (a, l) in &mut self.leases {
            l.pool = self.pools.iter().position(|p| p.contains(*a));
        }
        for p in &mut self.pools {
            p.in_use = 0;
        }
        for l in self.leases.values() {
            if let Some(i) = l.pool {
                self.pools[i].in_use += 1;
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.pools.is_empty()
    }

    pub fn has_pool(&self, name: &str) -> bool {
        self.pools.iter().any(|p| p.name == name)
    }

    /// The family of the pool named `name`, if there is one.
    pub fn family_of(&self, name: &str) -> Option<Family> {
        self.pools.iter().find(|p| p.name == name).map(|p| p.family)
    }

    /// The address of `family` leased to `owner`, if any.
    pub fn of(&self, owner: IkeSaId, family: Family) -> Option<IpAddr> {
        self.by_owner.get(&(owner, family)).copied()
    }

    /// Counts a client refused because its RADIUS server named an unknown pool.
    pub fn count_unknown(&mut self) {
        self.unknown_refused += 1;
    }

    pub fn unknown_refused(&self) -> u64 {
        self.unknown_refused
    }

    /// Leases an address to `owner` (which must hold none of that family) for `identity`.
    /// `stale`: IKE SAs about to go (the peer's INITIAL_CONTACT, RFC 7296 2.4): an address
    /// of theirs that this identity had may be taken over at once.
    pub fn lease(
        &mut self,
        owner: IkeSaId,
        identity: &Identity,
        request: &AddressRequest,
        stale: &[IkeSaId],
    ) -> Result<IpAddr, LeaseError> {
        let family = match request {
            AddressRequest::Fixed(a) => Family::of(*a),
            AddressRequest::Pool(name) => self
                .family_of(name)
                .ok_or_else(|| LeaseError::UnknownPool(name.clone()))?,
        };
        if let Some(a) = self.of(owner, family) {
            return Ok(a);
        }
        let (a, pool) = match request {
            AddressRequest::Fixed(a) => {
                if !self.available(*a, identity, stale) {
                    return Err(LeaseError::Taken(*a));
                }
                (*a, self.pools.iter().position(|p| p.contains(*a)))
            }
            AddressRequest::Pool(name) => {
                let i = self
                    .pools
                    .iter()
                    .position(|p| p.name == *name)
                    .ok_or_else(|| LeaseError::UnknownPool(name.clone()))?;
                let again = self
                    .last_of
                    .get(&(identity.clone(), family))
                    .copied()
                    .filter(|a| self.pools[i].contains(*a) && self.available(*a, identity, stale));
                match again.or_else(|| self.next_free(i)) {
                    Some(a) => (a, Some(i)),
                    None => {
                        self.pools[i].refused += 1;
                        return Err(LeaseError::Exhausted(name.clone()));
                    }
                }
            }
        };
        // A stale SA's lease taken over: it is no longer that SA's to release.
        if let Some(old) = self.leases.remove(&a) {
            self.by_owner.remove(&(old.owner, family));
            if let Some(p) = old.pool {
                self.pools[p].in_use -= 1;
            }
        }
        if let Some(p) = pool {
            self.pools[p].in_use += 1;
        }
        self.leases.insert(
            a,
            Lease {
                owner,
                identity: identity.clone(),
                pool,
            },
        );
        self.by_owner.insert((owner, family), a);
        self.remember(identity, a);
        Ok(a)
    }

    /// Free, or leased to a stale SA of the same identity.
    fn available(&self, a: IpAddr, identity: &Identity, stale: &[IkeSaId]) -> bool {
        match self.leases.get(&a) {
            None => true,
            Some(l) => l.identity == *identity && stale.contains(&l.owner),
        }
    }

    fn next_free(&mut self, i: usize) -> Option<IpAddr> {
        let p = &self.pools[i];
        // Addresses leased in the range, also those leased outside the pool's books (a
        // fixed one, or one a reload moved): the scan below meets at most these.
        let (lo, hi) = (addr(p.family, p.first), addr(p.family, p.last));
        let taken = self.leases.range(lo..=hi).count() as u128;
        if taken >= p.size() {
            return None;
        }
        let (family, first, size, start) = (p.family, p.first, p.size(), p.cursor - p.first);
        // At most `taken + 1` probes: the loop is bounded by the leases, not the range.
        let found = (0..size)
            .map(|k| addr(family, first + (start + k) % size))
            .find(|a| !self.leases.contains_key(a))?;
        let p = &mut self.pools[i];
        let n = num(found);
        p.cursor = if n == p.last { p.first } else { n + 1 };
        Some(found)
    }

    fn remember(&mut self, identity: &Identity, a: IpAddr) {
        let key = (identity.clone(), Family::of(a));
        if self.last_of.insert(key.clone(), a).is_none() {
            self.last_order.push_back(key);
            while self.last_order.len() > REMEMBERED {
                if let Some(old) = self.last_order.pop_front() {
                    self.last_of.remove(&old);
                }
            }
        }
    }

    /// `owner` ended: its addresses go back to their pools.
    pub fn release(&mut self, owner: IkeSaId) -> Vec<IpAddr> {
        let mut out = Vec::new();
        for family in [Family::Ipv4, Family::Ipv6] {
            let Some(a) = self.by_owner.remove(&(owner, family)) else {
                continue;
            };
            if let Some(l) = self.leases.remove(&a) {
                if let Some(p) = l.pool {
                    self.pools[p].in_use -= 1;
                }
            }
            out.push(a);
        }
        out
    }

    /// `from` was rekeyed into `to` (RFC 7296 2.18): the leases go with the IKE SA.
    pub fn transfer(&mut self, from: IkeSaId, to: IkeSaId) {
        for family in [Family::Ipv4, Family::Ipv6] {
            let Some(a) = self.by_owner.remove(&(from, family)) else {
                continue;
            };
            if self.by_owner.contains_key(&(to, family)) {
                // `to` has its own already; `from`'s goes.
                if let Some(l) = self.leases.remove(&a) {
                    if let Some(p) = l.pool {
                        self.pools[p].in_use -= 1;
                    }
                }
                continue;
            }
            if let Some(l) = self.leases.get_mut(&a) {
                l.owner = to;
            }
            self.by_owner.insert((to, family), a);
        }
    }

    pub fn stats(&self) -> Vec<PoolStats> {
        self.pools
            .iter()
            .map(|p| PoolStats {
                name: p.name.clone(),
                family: p.family,
                begin: addr(p.family, p.first),
                end: addr(p.family, p.last),
                free: u64::try_from(p.size() - u128::from(p.in_use)).unwrap_or(u64::MAX),
                in_use: p.in_use,
                refused: p.refused,
            })
            .collect()
    }

    /// Leases of addresses in no configured pool that came from one (a reload shrank or
    /// removed it) or were fixed outside every pool.
    pub fn outside_pools(&self) -> u32 {
        self.leases.values().filter(|l| l.pool.is_none()).count() as u32
    }

    /// The owners of every lease (for invariant checks).
    pub fn owners(&self) -> impl Iterator<Item = (IkeSaId, IpAddr)> + '_ {
        self.by_owner.iter().map(|((o, _), a)| (*o, *a))
    }

    /// The bookkeeping agrees with itself: each address once, each owner once per family,
    /// in-use counts equal to the leases in each pool.
    pub fn check(&self) -> Result<(), String> {
        if self.by_owner.len() != self.leases.len() {
            return Err(format!(
                "{} owners for {} leases",
                self.by_owner.len(),
                self.leases.len()
            ));
        }
        for ((o, f), a) in &self.by_owner {
            match self.leases.get(a) {
                Some(l) if l.owner == *o && Family::of(*a) == *f => {}
                _ => return Err(format!("owner {o:x} of {a} has no lease")),
            }
        }
        for (i, p) in self.pools.iter().enumerate() {
            let n = self.leases.values().filter(|l| l.pool == Some(i)).count() as u32;
            if n != p.in_use || u128::from(n) > p.size() {
                return Err(format!("pool {}: {} in use, {n} leases", p.name, p.in_use));
            }
        }
        for (a, l) in &self.leases {
            let holder = self.pools.iter().position(|p| p.contains(*a));
            if l.pool != holder {
                return Err(format!("lease {a} counted in the wrong pool"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pools(first: &str, last: &str) -> Pools {
        Pools::new(vec![AddressPool {
            name: "addressA".into(),
            first: first.parse().unwrap(),
            last: last.parse().unwrap(),
        }])
    }

    fn id(s: &str) -> Identity {
        Identity::UserFqdn(s.into())
    }

    fn pool() -> AddressRequest {
        AddressRequest::Pool("addressA".into())
    }

    #[test]
    fn leases_are_unique_and_a_full_pool_refuses() {
        let mut p = pools("192.0.2.1", "192.0.2.2");
        let a = p.lease(1, &id("a@x"), &pool(), &[]).unwrap();
        let b = p.lease(2, &id("b@x"), &pool(), &[]).unwrap();
        assert_ne!(a, b);
        assert_eq!(
            p.lease(3, &id("c@x"), &pool(), &[]),
            Err(LeaseError::Exhausted("addressA".into()))
        );
        assert_eq!(p.stats()[0].free, 0);
        assert_eq!(p.release(1), vec![a]);
        assert_eq!(p.lease(3, &id("c@x"), &pool(), &[]).unwrap(), a);
        assert_eq!(p.release(1), Vec::<IpAddr>::new(), "released once only");
        p.check().unwrap();
    }

    #[test]
    fn the_same_identity_gets_its_address_back() {
        let mut p = pools("192.0.2.1", "192.0.2.9");
        let a = p.lease(1, &id("joe@cclient"), &pool(), &[]).unwrap();
        p.lease(2, &id("ann@cclient"), &pool(), &[]).unwrap();
        p.release(1);
        // Others connect meanwhile: round robin leaves joe's address for him.
        p.lease(3, &id("bob@cclient"), &pool(), &[]).unwrap();
        assert_eq!(p.lease(4, &id("joe@cclient"), &pool(), &[]).unwrap(), a);
        p.check().unwrap();
    }

    #[test]
    fn initial_contact_takes_over_the_stale_lease_of_the_same_identity_only() {
        let mut p = pools("192.0.2.1", "192.0.2.9");
        let a = p.lease(1, &id("joe@cclient"), &pool(), &[]).unwrap();
        // Without INITIAL_CONTACT the old SA still holds it: another address.
        let mut q = pools("192.0.2.1", "192.0.2.9");
        let qa = q.lease(1, &id("joe@cclient"), &pool(), &[]).unwrap();
        assert_ne!(q.lease(2, &id("joe@cclient"), &pool(), &[]).unwrap(), qa);
        let c = p.lease(3, &id("joe@cclient"), &pool(), &[1]).unwrap();
        assert_eq!(c, a);
        assert_eq!(
            p.release(1),
            Vec::<IpAddr>::new(),
            "the stale SA no longer owns it"
        );
        assert_eq!(p.of(3, Family::Ipv4), Some(a));
        // Nobody else's stale lease is taken.
        assert!(p
            .lease(4, &id("ann@cclient"), &AddressRequest::Fixed(a), &[3])
            .is_err());
        p.check().unwrap();
    }

    #[test]
    fn fixed_addresses_and_transfer() {
        let mut p = pools("192.0.2.1", "192.0.2.2");
        let fixed: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(
            p.lease(1, &id("a"), &AddressRequest::Fixed(fixed), &[]),
            Ok(fixed)
        );
        assert_eq!(
            p.stats()[0].in_use,
            1,
            "a fixed address inside a pool counts"
        );
        let outside: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(
            p.lease(2, &id("b"), &AddressRequest::Fixed(outside), &[]),
            Ok(outside)
        );
        assert_eq!(
            p.lease(3, &id("c"), &AddressRequest::Fixed(outside), &[]),
            Err(LeaseError::Taken(outside))
        );
        p.transfer(1, 9);
        assert_eq!(p.of(9, Family::Ipv4), Some(fixed));
        assert_eq!(p.of(1, Family::Ipv4), None);
        assert_eq!(
            p.lease(4, &id("d"), &AddressRequest::Pool("nope".into()), &[]),
            Err(LeaseError::UnknownPool("nope".into()))
        );
        p.release(9);
        p.release(2);
        assert_eq!(p.stats()[0].in_use, 0);
        p.check().unwrap();
    }

    fn two_families() -> Pools {
        Pools::new(vec![
            AddressPool {
                name: "v4".into(),
                first: "192.0.2.1".parse().unwrap(),
                last: "192.0.2.2".parse().unwrap(),
            },
            AddressPool {
                name: "v6".into(),
                first: "2001:db8:1::1".parse().unwrap(),
                last: "2001:db8:1::ffff:ffff:ffff:ffff".parse().unwrap(),
            },
        ])
    }

    #[test]
    fn a_dual_stack_owner_holds_one_lease_per_family_and_releases_both() {
        let mut p = two_families();
        let v4 = AddressRequest::Pool("v4".into());
        let v6 = AddressRequest::Pool("v6".into());
        let a4 = p.lease(1, &id("joe"), &v4, &[]).unwrap();
        let a6 = p.lease(1, &id("joe"), &v6, &[]).unwrap();
        assert_eq!(a6, "2001:db8:1::1".parse::<IpAddr>().unwrap());
        assert_eq!(
            p.lease(1, &id("joe"), &v6, &[]).unwrap(),
            a6,
            "asked again: the same"
        );
        assert_eq!(
            (p.of(1, Family::Ipv4), p.of(1, Family::Ipv6)),
            (Some(a4), Some(a6))
        );
        let b6 = p.lease(2, &id("ann"), &v6, &[]).unwrap();
        assert_ne!(a6, b6);
        let s = p.stats();
        assert_eq!((s[1].family, s[1].in_use), (Family::Ipv6, 2));
        assert_eq!(s[1].free, u64::MAX - 2, "2^64 - 1 addresses, two in use");
        p.transfer(1, 7);
        assert_eq!(p.of(7, Family::Ipv6), Some(a6));
        let mut gone = p.release(7);
        gone.sort();
        assert_eq!(gone, vec![a4, a6]);
        assert_eq!(p.stats()[1].in_use, 1);
        p.check().unwrap();
    }

    #[test]
    fn an_ipv6_pool_runs_out_and_a_huge_one_is_searched_in_bounded_steps() {
        let mut p = Pools::new(vec![AddressPool {
            name: "v6".into(),
            first: "2001:db8::1".parse().unwrap(),
            last: "2001:db8::2".parse().unwrap(),
        }]);
        let r = AddressRequest::Pool("v6".into());
        p.lease(1, &id("a"), &r, &[]).unwrap();
        p.lease(2, &id("b"), &r, &[]).unwrap();
        assert_eq!(
            p.lease(3, &id("c"), &r, &[]),
            Err(LeaseError::Exhausted("v6".into()))
        );
        assert_eq!(p.stats()[0].refused, 1);
        // 2^64 addresses: a thousand leases take a thousand probes, not the range.
        let mut q = two_families();
        let v6 = AddressRequest::Pool("v6".into());
        for o in 0..1000u64 {
            q.lease(o, &id(&format!("u{o}")), &v6, &[]).unwrap();
        }
        q.check().unwrap();
    }

    #[test]
    fn a_reload_keeps_leases_outside_a_shrunk_pool_and_never_gives_them_away() {
        let mut p = pools("192.0.2.1", "192.0.2.4");
        let mut held = Vec::new();
        for o in 1..=4 {
            held.push(p.lease(o, &id(&format!("u{o}")), &pool(), &[]).unwrap());
        }
        // Shrunk to .1-.2, and a new pool over .3-.9: .3 and .4 stay their owners'.
        p.reconfigure(vec![
            AddressPool {
                name: "addressA".into(),
                first: "192.0.2.1".parse().unwrap(),
                last: "192.0.2.2".parse().unwrap(),
            },
            AddressPool {
                name: "addressB".into(),
                first: "192.0.2.3".parse().unwrap(),
                last: "192.0.2.9".parse().unwrap(),
            },
        ]);
        p.check().unwrap();
        let s = p.stats();
        assert_eq!((s[0].in_use, s[0].free), (2, 0));
        assert_eq!(
            (s[1].in_use, s[1].free),
            (2, 5),
            "the moved leases count where they lie"
        );
        let b = AddressRequest::Pool("addressB".into());
        let got = p.lease(9, &id("new"), &b, &[]).unwrap();
        assert!(!held.contains(&got), "{got} is still leased");
        // The pool removed: the leases stay, outside every pool, until their owners end.
        p.reconfigure(vec![]);
        assert_eq!(p.outside_pools(), 5);
        assert_eq!(p.of(3, Family::Ipv4), Some(held[2]));
        assert_eq!(
            p.lease(10, &id("x"), &pool(), &[]),
            Err(LeaseError::UnknownPool("addressA".into()))
        );
        p.reconfigure(vec![AddressPool {
            name: "addressA".into(),
            first: "192.0.2.1".parse().unwrap(),
            last: "192.0.2.6".parse().unwrap(),
        }]);
        assert_eq!(
            p.lease(11, &id("y"), &pool(), &[]).unwrap(),
            "192.0.2.6".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            p.lease(12, &id("z"), &pool(), &[]),
            Err(LeaseError::Exhausted("addressA".into()))
        );
        for o in [1, 2, 3, 4, 9, 11] {
            p.release(o);
        }
        assert_eq!(p.outside_pools(), 0);
        assert_eq!(p.stats()[0].in_use, 0);
        p.check().unwrap();
    }
}
