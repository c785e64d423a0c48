//! Address pools (IOS `ip local pool`) and their leases, owned by the engine: a lease
//! belongs to one IKE SA, from its IKE_AUTH (RFC 7296 3.15.4) until it ends (delete, DPD,
//! expiry, INITIAL_CONTACT); an IKE SA rekey hands it to the successor. The endpoint releases
//! a dead SA's lease when it forgets the SA, so no path that ends an SA can leak one.
//!
//! Hand-written: no crate keeps leases tied to a protocol engine's SAs; the allocator itself
//! is a round-robin cursor over a `u32` range (IPv4 only), plus a bounded memory of which
//! address each identity last had, so a client that reconnects gets it back when it is free.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr};

use super::codec::Identity;
use super::endpoint::IkeSaId;

/// The largest pool: 2^20 addresses (a /12), so a scan for a free one stays bounded.
pub const MAX_POOL_SIZE: u32 = 1 << 20;

/// A named IPv4 range, both ends included (`ip local pool NAME FIRST LAST`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressPool {
    pub name: String,
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
}

/// Where an IKE SA's address comes from: the profile's pool, or what the authentication
/// step supplied (RADIUS Framed-Pool or Framed-IP-Address, RFC 2865 5.8, 5.23), which
/// overrides it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddressRequest {
    Pool(String),
    Fixed(Ipv4Addr),
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    #[error("no address pool named '{0}'")]
    UnknownPool(String),
    #[error("address pool '{0}' is exhausted")]
    Exhausted(String),
    #[error("address {0} is leased to another session")]
    Taken(Ipv4Addr),
}

/// One pool's figures, as `show ip local pool` prints them.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PoolStats {
    pub name: String,
    pub begin: Ipv4Addr,
    pub end: Ipv4Addr,
    pub free: u32,
    pub in_use: u32,
    /// Clients refused because the pool was full (INTERNAL_ADDRESS_FAILURE).
    pub refused: u64,
}

struct Pool {
    name: String,
    first: u32,
    last: u32,
    /// Where the next search for a free address starts: round robin, so a released
    /// address is the last to be given to someone else (its owner may come back).
    cursor: u32,
    in_use: u32,
    refused: u64,
}

impl Pool {
    fn size(&self) -> u32 {
        self.last - self.first + 1
    }
    fn contains(&self, a: u32) -> bool {
        (self.first..=self.last).contains(&a)
    }
}

struct Lease {
    owner: IkeSaId,
    identity: Identity,
    /// The pool it came from; None for a fixed address from outside every pool.
    pool: Option<usize>,
}

/// Every pool and every lease: one address is leased at most once, whichever pool or
/// fixed request it came from.
#[derive(Default)]
pub struct Pools {
    pools: Vec<Pool>,
    leases: BTreeMap<u32, Lease>,
    by_owner: HashMap<IkeSaId, u32>,
    /// The address each identity had last (bounded: oldest forgotten first).
    last_of: HashMap<Identity, u32>,
    last_order: VecDeque<Identity>,
}

/// Identities remembered for their last address, at most.
const REMEMBERED: usize = 65_536;

impl Pools {
    /// The pools; names are unique and ranges ordered and bounded (the configuration
    /// checks it, and this re-checks: a pool that is not is left out).
    pub fn new(pools: Vec<AddressPool>) -> Pools {
        let pools = pools
            .into_iter()
            .filter_map(|p| {
                let (first, last) = (u32::from(p.first), u32::from(p.last));
                (first <= last && last - first < MAX_POOL_SIZE).then_some(Pool {
                    name: p.name,
                    first,
                    last,
                    cursor: first,
                    in_use: 0,
                    refused: 0,
                })
            })
            .collect();
        Pools {
            pools,
            ..Pools::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.pools.is_empty()
    }

    pub fn has_pool(&self, name: &str) -> bool {
        self.pools.iter().any(|p| p.name == name)
    }

    /// The address leased to `owner`, if any.
    pub fn of(&self, owner: IkeSaId) -> Option<Ipv4Addr> {
        self.by_owner.get(&owner).map(|a| Ipv4Addr::from(*a))
    }

    /// Leases an address to `owner` (which must hold none) for `identity`. `stale`: IKE
    /// SAs about to go (the peer's INITIAL_CONTACT, RFC 7296 2.4): an address of theirs
    /// that this identity had may be taken over at once.
    pub fn lease(
        &mut self,
        owner: IkeSaId,
        identity: &Identity,
        request: &AddressRequest,
        stale: &[IkeSaId],
    ) -> Result<Ipv4Addr, LeaseError> {
        if let Some(a) = self.of(owner) {
            return Ok(a);
        }
        let (addr, pool) = match request {
            AddressRequest::Fixed(a) => {
                let a = u32::from(*a);
                if !self.available(a, identity, stale) {
                    return Err(LeaseError::Taken(Ipv4Addr::from(a)));
                }
                (a, self.pools.iter().position(|p| p.contains(a)))
            }
            AddressRequest::Pool(name) => {
                let i = self
                    .pools
                    .iter()
                    .position(|p| p.name == *name)
                    .ok_or_else(|| LeaseError::UnknownPool(name.clone()))?;
                let again =
                    self.last_of.get(identity).copied().filter(|a| {
                        self.pools[i].contains(*a) && self.available(*a, identity, stale)
                    });
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
        if let Some(old) = self.leases.remove(&addr) {
            self.by_owner.remove(&old.owner);
            if let Some(p) = old.pool {
                self.pools[p].in_use -= 1;
            }
        }
        if let Some(p) = pool {
            self.pools[p].in_use += 1;
        }
        self.leases.insert(
            addr,
            Lease {
                owner,
                identity: identity.clone(),
                pool,
            },
        );
        self.by_owner.insert(owner, addr);
        self.remember(identity, addr);
        Ok(Ipv4Addr::from(addr))
    }

    /// Free, or leased to a stale SA of the same identity.
    fn available(&self, a: u32, identity: &Identity, stale: &[IkeSaId]) -> bool {
        match self.leases.get(&a) {
            None => true,
            Some(l) => l.identity == *identity && stale.contains(&l.owner),
        }
    }

    fn next_free(&mut self, i: usize) -> Option<u32> {
        let p = &self.pools[i];
        if p.in_use >= p.size() {
            return None;
        }
        let (first, size, start) = (p.first, p.size(), p.cursor - p.first);
        let found = (0..size)
            .map(|k| first + (start + k) % size)
            // Not an address some identity had last, when others are free: it may come back.
            .find(|a| !self.leases.contains_key(a))?;
        let p = &mut self.pools[i];
        p.cursor = if found == p.last { p.first } else { found + 1 };
        Some(found)
    }

    fn remember(&mut self, identity: &Identity, addr: u32) {
        if self.last_of.insert(identity.clone(), addr).is_none() {
            self.last_order.push_back(identity.clone());
            while self.last_order.len() > REMEMBERED {
                if let Some(old) = self.last_order.pop_front() {
                    self.last_of.remove(&old);
                }
            }
        }
    }

    /// `owner` ended: its address goes back to the pool.
    pub fn release(&mut self, owner: IkeSaId) -> Option<Ipv4Addr> {
        let a = self.by_owner.remove(&owner)?;
        if let Some(l) = self.leases.remove(&a) {
            if let Some(p) = l.pool {
                self.pools[p].in_use -= 1;
            }
        }
        Some(Ipv4Addr::from(a))
    }

    /// `from` was rekeyed into `to` (RFC 7296 2.18): the lease goes with the IKE SA.
    pub fn transfer(&mut self, from: IkeSaId, to: IkeSaId) {
        if self.by_owner.contains_key(&to) {
            // `to` has its own already; `from`'s goes.
            self.release(from);
            return;
        }
        if let Some(a) = self.by_owner.remove(&from) {
            if let Some(l) = self.leases.get_mut(&a) {
                l.owner = to;
            }
            self.by_owner.insert(to, a);
        }
    }

    pub fn stats(&self) -> Vec<PoolStats> {
        self.pools
            .iter()
            .map(|p| PoolStats {
                name: p.name.clone(),
                begin: Ipv4Addr::from(p.first),
                end: Ipv4Addr::from(p.last),
                free: p.size() - p.in_use,
                in_use: p.in_use,
                refused: p.refused,
            })
            .collect()
    }

    /// The owners of every lease (for invariant checks).
    pub fn owners(&self) -> impl Iterator<Item = (IkeSaId, IpAddr)> + '_ {
        self.by_owner
            .iter()
            .map(|(o, a)| (*o, IpAddr::V4(Ipv4Addr::from(*a))))
    }

    /// The bookkeeping agrees with itself: each address once, each owner once, in-use
    /// counts equal to the leases in each pool.
    pub fn check(&self) -> Result<(), String> {
        if self.by_owner.len() != self.leases.len() {
            return Err(format!(
                "{} owners for {} leases",
                self.by_owner.len(),
                self.leases.len()
            ));
        }
        for (o, a) in &self.by_owner {
            match self.leases.get(a) {
                Some(l) if l.owner == *o => {}
                _ => {
                    return Err(format!(
                        "owner {o:x} of {} has no lease",
                        Ipv4Addr::from(*a)
                    ))
                }
            }
        }
        for (i, p) in self.pools.iter().enumerate() {
            let n = self.leases.values().filter(|l| l.pool == Some(i)).count() as u32;
            if n != p.in_use || n > p.size() {
                return Err(format!("pool {}: {} in use, {n} leases", p.name, p.in_use));
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
        assert_eq!(p.release(1), Some(a));
        assert_eq!(p.lease(3, &id("c@x"), &pool(), &[]).unwrap(), a);
        assert_eq!(p.release(1), None, "released once only");
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
        assert_eq!(p.release(1), None, "the stale SA no longer owns it");
        assert_eq!(p.of(3), Some(a));
        // Nobody else's stale lease is taken.
        assert!(p
            .lease(4, &id("ann@cclient"), &AddressRequest::Fixed(a), &[3])
            .is_err());
        p.check().unwrap();
    }

    #[test]
    fn fixed_addresses_and_transfer() {
        let mut p = pools("192.0.2.1", "192.0.2.2");
        let fixed: Ipv4Addr = "192.0.2.2".parse().unwrap();
        assert_eq!(
            p.lease(1, &id("a"), &AddressRequest::Fixed(fixed), &[]),
            Ok(fixed)
        );
        assert_eq!(
            p.stats()[0].in_use,
            1,
            "a fixed address inside a pool counts"
        );
        let outside: Ipv4Addr = "198.51.100.7".parse().unwrap();
        assert_eq!(
            p.lease(2, &id("b"), &AddressRequest::Fixed(outside), &[]),
            Ok(outside)
        );
        assert_eq!(
            p.lease(3, &id("c"), &AddressRequest::Fixed(outside), &[]),
            Err(LeaseError::Taken(outside))
        );
        p.transfer(1, 9);
        assert_eq!(p.of(9), Some(fixed));
        assert_eq!(p.of(1), None);
        assert_eq!(
            p.lease(4, &id("d"), &AddressRequest::Pool("nope".into()), &[]),
            Err(LeaseError::UnknownPool("nope".into()))
        );
        p.release(9);
        p.release(2);
        assert_eq!(p.stats()[0].in_use, 0);
        p.check().unwrap();
    }
}
