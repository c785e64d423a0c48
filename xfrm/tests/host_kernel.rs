//! Against this machine's real kernel, each test in a network namespace of its own (so the
//! host's XFRM state is never touched). The CI machine's kernel has XFRM netlink but no ESP:
//! policies install, ESP SAs are refused; the VM lab covers installing SAs that carry traffic.
//!
//! Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN for unshare). Without it these tests fail with a
//! message saying so rather than passing vacuously.

use std::net::IpAddr;

use futures::StreamExt;
use vpnd_xfrm::testing::in_netns;
use vpnd_xfrm::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn policy(owner: &Owner, src: &str, dst: &str, dir: Dir) -> PolicySpec {
    PolicySpec {
        selector: Selector::new(src.parse().unwrap(), dst.parse().unwrap()),
        dir,
        action: Action::Allow,
        priority: 1000,
        templates: vec![Template {
            src: ip("192.0.2.1"),
            dst: ip("192.0.2.2"),
            mode: Mode::Tunnel,
            reqid: owner.reqid(1),
        }],
        mark: None,
        if_id: None,
    }
}

fn gcm_sa(owner: &Owner, spi: u32) -> SaSpec {
    SaSpec {
        id: SaId::esp(ip("192.0.2.1"), ip("192.0.2.2"), spi),
        reqid: owner.reqid(1),
        mode: Mode::Tunnel,
        selector: None,
        algorithms: Algorithms::AesGcm16 {
            key: Key::new(vec![7; 36]),
        },
        esn: true,
        replay_window: 128,
        encap: None,
        if_id: None,
        lifetime: Lifetime::default(),
    }
}

#[test]
fn policy_round_trip_and_dump() {
    in_netns(|| async {
        let owner = Owner::default();
        let x = Xfrm::connect(owner).unwrap();
        let mut p = policy(&owner, "198.51.100.0/25", "203.0.113.0/26", Dir::Out);
        p.selector.proto = 17;
        p.selector.dport = Some(4789);
        x.add_policy(&p).await.unwrap();
        let got = x.dump_policies(DumpScope::Owned).await.unwrap();
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].key, p.key());
        assert_eq!(got[0].templates, p.templates);
        assert_eq!(got[0].priority, 1000);
        x.delete_policy(&p.key()).await.unwrap();
        assert!(x.dump_policies(DumpScope::All).await.unwrap().is_empty());
    });
}

#[test]
fn duplicate_policy_is_a_kernel_error_naming_the_policy() {
    in_netns(|| async {
        let owner = Owner::default();
        let x = Xfrm::connect(owner).unwrap();
        let p = policy(&owner, "198.51.100.0/25", "203.0.113.0/26", Dir::Fwd);
        x.add_policy(&p).await.unwrap();
        let e = x.add_policy(&p).await.unwrap_err();
        assert_eq!(e.errno(), Some(libc::EEXIST), "{e}");
        let s = e.to_string();
        assert!(
            s.starts_with("add policy policy fwd 198.51.100.0/25 -> 203.0.113.0/26: "),
            "{s}"
        );
        assert!(s.contains("EEXIST"), "{s}");
        // update replaces it instead
        x.update_policy(&p).await.unwrap();
    });
}

#[test]
fn bad_selectors_are_refused_before_the_kernel() {
    in_netns(|| async {
        let owner = Owner::default();
        let x = Xfrm::connect(owner).unwrap();
        let mixed = policy(&owner, "198.51.100.0/25", "2001:db8::/32", Dir::Out);
        let e = x.add_policy(&mixed).await.unwrap_err();
        assert!(
            matches!(
                e,
                Error::Invalid {
                    what: "policy selector",
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("different families"), "{e}");

        let mut ports = policy(&owner, "198.51.100.0/25", "203.0.113.0/26", Dir::Out);
        ports.selector.dport = Some(80); // proto 0 (any) has no ports
        let e = x.add_policy(&ports).await.unwrap_err();
        assert!(e.to_string().contains("port-carrying protocol"), "{e}");

        let mut foreign = policy(&owner, "198.51.100.0/25", "203.0.113.0/26", Dir::Out);
        foreign.templates[0].reqid = 1; // strongSwan's first reqid
        let e = x.add_policy(&foreign).await.unwrap_err();
        assert!(e.to_string().contains("outside vpnd's band"), "{e}");
        // Nothing reached the kernel.
        assert!(x.dump_policies(DumpScope::All).await.unwrap().is_empty());
    });
}

#[test]
fn deleting_what_does_not_exist_says_so() {
    in_netns(|| async {
        let owner = Owner::default();
        let x = Xfrm::connect(owner).unwrap();
        let id = SaId::esp(ip("192.0.2.1"), ip("192.0.2.2"), 0xdead_beef);
        let e = x.delete_sa(&id).await.unwrap_err();
        assert!(e.is_not_found(), "{e:?}");
        let s = e.to_string();
        assert!(
            s.starts_with("delete SA esp SA 192.0.2.1->192.0.2.2 spi 0xdeadbeef: "),
            "{s}"
        );
        assert!(s.contains("ESRCH"), "{s}");
        let e = x.get_sa(&id).await.unwrap_err();
        assert!(e.is_not_found(), "{e:?}");
        assert!(
            e.to_string()
                .starts_with("get SA esp SA 192.0.2.1->192.0.2.2 spi 0xdeadbeef: "),
            "{e}"
        );

        let key = policy(&owner, "198.51.100.0/25", "203.0.113.0/26", Dir::In).key();
        let e = x.delete_policy(&key).await.unwrap_err();
        assert!(e.is_not_found(), "{e:?}");
        assert!(
            e.to_string()
                .starts_with("delete policy policy in 198.51.100.0/25 -> 203.0.113.0/26: "),
            "{e}"
        );
    });
}

#[test]
fn sa_with_an_algorithm_the_kernel_lacks_is_a_typed_error() {
    in_netns(|| async {
        let owner = Owner::default();
        let x = Xfrm::connect(owner).unwrap();
        let sa = gcm_sa(&owner, 0x1234_5678);
        match x.add_sa(&sa).await {
            // This machine's kernel (see shared/LAB.md) has neither GCM nor ESP: it refuses
            // with ENOSYS ("Requested AEAD algorithm not found") or EPROTONOSUPPORT
            // ("Requested type not found"), and the error carries that text.
            Err(e @ Error::Kernel { .. }) => {
                let s = e.to_string();
                assert!(
                    s.starts_with("add SA esp SA 192.0.2.1->192.0.2.2 spi 0x12345678: "),
                    "{s}"
                );
                assert!(
                    matches!(e.errno(), Some(libc::ENOSYS) | Some(libc::EPROTONOSUPPORT)),
                    "{s}"
                );
                let Error::Kernel { kernel, .. } = &e else {
                    unreachable!()
                };
                assert!(
                    kernel
                        .message
                        .as_deref()
                        .is_some_and(|m| m.contains("not found")),
                    "{s}"
                );
                assert!(x.dump_counters(DumpScope::All).await.unwrap().is_empty());
            }
            // A kernel with ESP and GCM accepts it; then the dump must show it with our reqid.
            Ok(()) => {
                let got = x.dump_counters(DumpScope::Owned).await.unwrap();
                assert_eq!(got.len(), 1);
                assert_eq!(got[0].id, sa.id);
                assert!(got[0].esn);
            }
            Err(e) => panic!("unexpected error kind: {e:?}"),
        }
    });
}

#[test]
fn invalid_sa_specs_are_refused_before_the_kernel() {
    in_netns(|| async {
        let owner = Owner::default();
        let x = Xfrm::connect(owner).unwrap();
        let mut short_key = gcm_sa(&owner, 0x1000);
        short_key.algorithms = Algorithms::AesGcm16 {
            key: Key::new(vec![1; 16]),
        }; // salt missing
        let e = x.add_sa(&short_key).await.unwrap_err();
        assert!(
            e.to_string()
                .contains("AES-GCM key with salt must be 20, 28 or 36 bytes, got 16"),
            "{e}"
        );

        let mut bad_integ = gcm_sa(&owner, 0x1001);
        bad_integ.algorithms = Algorithms::AesCbc {
            key: Key::new(vec![1; 32]),
            integ: Integ::HmacSha384_192,
            integ_key: Key::new(vec![2; 32]),
        };
        let e = x.add_sa(&bad_integ).await.unwrap_err();
        assert!(
            e.to_string()
                .contains("hmac(sha384) key must be 48 bytes, got 32"),
            "{e}"
        );

        let reserved = gcm_sa(&owner, 255);
        assert!(x
            .add_sa(&reserved)
            .await
            .unwrap_err()
            .to_string()
            .contains("reserved"));

        let mut esn_no_window = gcm_sa(&owner, 0x1002);
        esn_no_window.replay_window = 0;
        assert!(x
            .add_sa(&esn_no_window)
            .await
            .unwrap_err()
            .to_string()
            .contains("ESN needs a replay window"));

        let mut lifetimes = gcm_sa(&owner, 0x1003);
        lifetimes.lifetime = Lifetime {
            soft_bytes: Some(10),
            hard_bytes: Some(5),
            ..Default::default()
        };
        assert!(x
            .add_sa(&lifetimes)
            .await
            .unwrap_err()
            .to_string()
            .contains("soft bytes limit 10 is above the hard limit 5"));
    });
}

#[test]
fn flush_owned_leaves_foreign_policies_alone() {
    in_netns(|| async {
        let owner = Owner::default();
        let x = Xfrm::connect(owner).unwrap();
        // A "foreign daemon" with reqid 1 (strongSwan's first), installed through a handle
        // whose band includes reqid 1.
        let foreign_owner = Owner {
            reqid_base: 1,
            reqid_span: 100,
            priority_band: (0, 1),
        };
        let foreign = Xfrm::connect(foreign_owner).unwrap();
        let mut theirs = policy(
            &foreign_owner,
            "198.51.100.0/25",
            "203.0.113.64/26",
            Dir::Out,
        );
        theirs.templates[0].reqid = 1;
        foreign.add_policy(&theirs).await.unwrap();

        for dir in [Dir::Out, Dir::In, Dir::Fwd] {
            x.add_policy(&policy(&owner, "198.51.100.0/25", "203.0.113.0/26", dir))
                .await
                .unwrap();
        }
        // A template-less bypass policy in vpnd's priority band.
        let bypass = PolicySpec {
            selector: Selector::new(
                "192.0.2.1/32".parse().unwrap(),
                "192.0.2.2/32".parse().unwrap(),
            ),
            dir: Dir::Out,
            action: Action::Allow,
            priority: owner.priority_band.0,
            templates: vec![],
            mark: None,
            if_id: None,
        };
        x.add_policy(&bypass).await.unwrap();
        assert_eq!(x.dump_policies(DumpScope::All).await.unwrap().len(), 5);
        assert_eq!(x.dump_policies(DumpScope::Owned).await.unwrap().len(), 4);

        let report = x.flush_owned().await.unwrap();
        assert_eq!(
            report,
            FlushReport {
                policies: 4,
                sas: 0
            }
        );
        let left = x.dump_policies(DumpScope::All).await.unwrap();
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(left[0].key, theirs.key());
    });
}

#[test]
fn policy_changes_arrive_as_events() {
    in_netns(|| async {
        let owner = Owner::default();
        let mut events = Events::subscribe().unwrap();
        let x = Xfrm::connect(owner).unwrap();
        let p = policy(&owner, "198.51.100.0/25", "203.0.113.0/26", Dir::Out);
        x.add_policy(&p).await.unwrap();
        x.delete_policy(&p.key()).await.unwrap();
        let timeout = std::time::Duration::from_secs(5);
        let first = tokio::time::timeout(timeout, events.next())
            .await
            .expect("no event within 5 s")
            .unwrap();
        assert_eq!(first, Event::PolicyAdded(p.key()));
        let second = tokio::time::timeout(timeout, events.next())
            .await
            .expect("no event within 5 s")
            .unwrap();
        match second {
            Event::PolicyDeleted { dir, .. } => assert_eq!(dir, Some(Dir::Out)),
            other => panic!("expected PolicyDeleted, got {other:?}"),
        }
    });
}
