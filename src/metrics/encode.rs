//! The OpenMetrics text of one scrape, from the snapshots, through prometheus-client's
//! encoder (its escaping, `_total` suffixes, `# EOF`). A [`Collector`] rather than
//! registered metric objects: the values already exist in the owners' snapshots, so they
//! are written as they are instead of being copied into atomics first.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::snapshot::{AccountingSnapshot, EngineSnapshot, DUMP_BUCKETS, STATUSES};

type Labels = Vec<(&'static str, String)>;

#[derive(Debug)]
struct Scrape {
    engine: Arc<EngineSnapshot>,
    accounting: Option<Arc<AccountingSnapshot>>,
}

/// The whole exposition, `# EOF` included.
pub fn encode(engine: Arc<EngineSnapshot>, accounting: Option<Arc<AccountingSnapshot>>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape { engine, accounting }));
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

fn counter(m: &mut MetricEncoder, v: u64) -> Result<(), std::fmt::Error> {
    m.encode_counter::<NoLabelSet, _, u64>(&v, None)
}

fn labelled_counter(
    m: &mut MetricEncoder,
    labels: &impl EncodeLabelSet,
    v: u64,
) -> Result<(), std::fmt::Error> {
    counter(&mut m.encode_family(labels)?, v)
}

fn labelled_gauge(
    m: &mut MetricEncoder,
    labels: &impl EncodeLabelSet,
    v: u64,
) -> Result<(), std::fmt::Error> {
    m.encode_family(labels)?.encode_gauge(&v)
}

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.engine;
        {
            let mut m = e.encode_descriptor(
                "vpnd_sessions",
                "Crypto sessions by IOS status",
                None,
                MetricType::Gauge,
            )?;
            for (st, n) in STATUSES.iter().zip(s.sessions_by_status) {
                labelled_gauge(&mut m, &[("status", st.as_str())], n)?;
            }
        }
        let session_labels = |x: &super::snapshot::SessionSample, dir: &'static str| {
            let mut l: Labels = vec![
                ("direction", dir.to_string()),
                ("peer", x.peer.clone()),
                ("remote", x.remote.clone()),
            ];
            for (k, v) in [
                ("fvrf", &x.fvrf),
                ("ivrf", &x.ivrf),
                ("username", &x.username),
            ] {
                if let Some(v) = v {
                    l.push((k, v.clone()));
                }
            }
            l
        };
        {
            let mut m = e.encode_descriptor(
                "vpnd_session_bytes",
                "Bytes carried by a crypto session's IPsec SAs, every rekey included",
                None,
                MetricType::Counter,
            )?;
            for x in &s.sessions {
                labelled_counter(&mut m, &session_labels(x, "in"), x.totals.bytes_in)?;
                labelled_counter(&mut m, &session_labels(x, "out"), x.totals.bytes_out)?;
            }
        }
        {
            let mut m = e.encode_descriptor(
                "vpnd_session_packets",
                "Packets carried by a crypto session's IPsec SAs, every rekey included",
                None,
                MetricType::Counter,
            )?;
            for x in &s.sessions {
                labelled_counter(&mut m, &session_labels(x, "in"), x.totals.packets_in)?;
                labelled_counter(&mut m, &session_labels(x, "out"), x.totals.packets_out)?;
            }
        }
        {
            let mut m = e.encode_descriptor(
                "vpnd_ike_sas",
                "IKE SAs: established, or half-open (being negotiated)",
                None,
                MetricType::Gauge,
            )?;
            labelled_gauge(&mut m, &[("state", "established")], s.ike_sas)?;
            labelled_gauge(&mut m, &[("state", "half_open")], s.half_open_sas)?;
        }
        e.encode_descriptor(
            "vpnd_child_sas",
            "Child SAs (inbound and outbound pair) in the kernel",
            None,
            MetricType::Gauge,
        )?
        .encode_gauge(&s.child_sas)?;
        {
            let c = &s.counters;
            let mut m = e.encode_descriptor(
                "vpnd_ike_handshakes",
                "IKE SA negotiations by how they ended",
                None,
                MetricType::Counter,
            )?;
            for (r, v) in [
                ("established", c.handshakes_established),
                ("failed", c.handshakes_failed),
                ("timeout", c.handshakes_timeout),
                ("aborted", c.handshakes_aborted),
            ] {
                labelled_counter(&mut m, &[("result", r)], v)?;
            }
        }
        {
            let mut m = e.encode_descriptor(
                "vpnd_rekeys",
                "Completed rekeys, of IKE SAs and of child SAs",
                None,
                MetricType::Counter,
            )?;
            labelled_counter(&mut m, &[("sa", "ike")], s.counters.ike_rekeys)?;
            labelled_counter(&mut m, &[("sa", "child")], s.counters.child_rekeys)?;
        }
        counter(
            &mut e.encode_descriptor(
                "vpnd_dpd_failures",
                "Established IKE SAs taken down because the peer stopped answering",
                None,
                MetricType::Counter,
            )?,
            s.counters.dpd_failures,
        )?;
        {
            let d = &s.dump;
            let mut buckets: Vec<(f64, u64)> = DUMP_BUCKETS
                .iter()
                .copied()
                .zip(d.buckets.iter().copied())
                .collect();
            buckets.push((f64::INFINITY, d.buckets[DUMP_BUCKETS.len()]));
            e.encode_descriptor(
                "vpnd_kernel_dump_duration_seconds",
                "Time of one netlink dump of every SA's counters",
                None,
                MetricType::Histogram,
            )?
            .encode_histogram::<NoLabelSet>(d.sum_seconds, d.count, &buckets, None)?;
            counter(
                &mut e.encode_descriptor(
                    "vpnd_kernel_dump_errors",
                    "Kernel counter dumps that failed",
                    None,
                    MetricType::Counter,
                )?,
                d.errors,
            )?;
        }
        {
            let mut m = e.encode_descriptor(
                "vpnd_syslog_queued",
                "Syslog notices waiting for their destination",
                None,
                MetricType::Gauge,
            )?;
            for (dest, n) in &s.syslog_queued {
                labelled_gauge(&mut m, &[("destination", dest.as_str())], *n)?;
            }
        }
        if let Some(a) = &self.accounting {
            e.encode_descriptor(
                "vpnd_accounting_outbox_records",
                "Accounting records not yet acknowledged by a RADIUS server",
                None,
                MetricType::Gauge,
            )?
            .encode_gauge(&a.queued)?;
            e.encode_descriptor(
                "vpnd_accounting_outbox_oldest_age_seconds",
                "Age of the oldest unacknowledged accounting record (0 when none)",
                None,
                MetricType::Gauge,
            )?
            .encode_gauge(&a.oldest_age_seconds)?;
            type Field = fn(&vpnd_radius::ServerStats) -> u64;
            let per_server: [(&str, &str, Field); 4] = [
                (
                    "vpnd_radius_requests",
                    "Accounting-Requests sent (first transmissions)",
                    |s| s.requests,
                ),
                (
                    "vpnd_radius_retransmits",
                    "Accounting-Requests sent again",
                    |s| s.retransmissions,
                ),
                (
                    "vpnd_radius_timeouts",
                    "Transmissions that got no answer in time",
                    |s| s.timeouts,
                ),
                (
                    "vpnd_radius_bad_authenticators",
                    "Responses dropped: wrong Response Authenticator or source",
                    |s| s.forged,
                ),
            ];
            for (name, help, f) in per_server {
                let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
                for srv in &a.servers {
                    let l = [
                        ("server", srv.name.clone()),
                        ("address", srv.addr.to_string()),
                    ];
                    labelled_counter(&mut m, &l, f(srv))?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::snapshot::SessionSample;
    use crate::metrics::text::{parse, value};
    use crate::session::table::{ChildInfo, PeerInfo, SessionTable};
    use vpnd_xfrm::{SaCounters, SaId};

    fn reading(spi: u32, bytes: u64, packets: u64) -> SaCounters {
        let id = SaId::esp(
            "192.0.2.1".parse().unwrap(),
            "192.0.2.2".parse().unwrap(),
            spi,
        );
        SaCounters::usage(id, bytes, packets)
    }

    fn child(i: u32, o: u32) -> ChildInfo {
        ChildInfo {
            inbound_spi: i,
            outbound_spi: o,
            protocol: 0,
            local_ts: "198.51.100.0/25".into(),
            remote_ts: "203.0.113.0/26".into(),
            lifetime_s: 3600,
            lifetime_kb: None,
            installed_at: 1000,
        }
    }

    /// What the daemon loop publishes from its table.
    fn scrape(t: &SessionTable) -> Vec<crate::metrics::text::Sample> {
        let sessions = t
            .summaries()
            .map(|s| SessionSample {
                peer: s.peer_name.to_string(),
                remote: s.key.peer.to_string(),
                fvrf: s.key.fvrf.clone(),
                ivrf: s.key.ivrf.clone(),
                username: s.phase1_id.map(str::to_string),
                totals: s.totals,
            })
            .collect();
        let snap = EngineSnapshot {
            sessions_by_status: [1, 0, 0, 0, 0],
            sessions,
            ..EngineSnapshot::default()
        };
        let text = encode(Arc::new(snap), None);
        assert!(text.ends_with("# EOF\n"), "{text}");
        parse(&text).unwrap()
    }

    #[test]
    fn session_counters_never_go_backwards_across_a_child_rekey() {
        let mut t = SessionTable::new();
        let peer = PeerInfo {
            name: "site-b".into(),
            ..PeerInfo::default()
        };
        let (l, r) = (
            "192.0.2.1:500".parse().unwrap(),
            "192.0.2.2:500".parse().unwrap(),
        );
        t.ike_up(1, peer, l, r, Some("gw.b.example".into()), true, 5000);
        t.child_installed(1, 10, child(0x100, 0x200), 1000);
        t.counters(&[reading(0x100, 1000, 10), reading(0x200, 2000, 20)]);
        let labels = |dir| {
            [
                ("direction", dir),
                ("peer", "site-b"),
                ("remote", "192.0.2.2:500"),
                ("username", "gw.b.example"),
            ]
        };
        let before = scrape(&t);
        assert_eq!(
            value(&before, "vpnd_session_bytes_total", &labels("in")),
            Some(1000.0)
        );
        assert_eq!(
            value(&before, "vpnd_session_bytes_total", &labels("out")),
            Some(2000.0)
        );
        // Rekey: the new pair starts from zero in the kernel, the old one leaves.
        t.child_installed(1, 11, child(0x101, 0x201), 1100);
        t.child_removed(10, 1101);
        t.counters(&[reading(0x101, 5, 1), reading(0x201, 7, 1)]);
        let after = scrape(&t);
        assert_eq!(
            value(&after, "vpnd_session_bytes_total", &labels("in")),
            Some(1005.0)
        );
        assert_eq!(
            value(&after, "vpnd_session_packets_total", &labels("out")),
            Some(21.0)
        );
        assert_eq!(
            value(&after, "vpnd_sessions", &[("status", "UP-ACTIVE")]),
            Some(1.0)
        );
        assert_eq!(
            value(&after, "vpnd_sessions", &[("status", "DOWN")]),
            Some(0.0)
        );
    }

    #[test]
    fn a_hostile_identity_stays_inside_its_label() {
        let snap = EngineSnapshot {
            sessions: vec![SessionSample {
                peer: "p".into(),
                remote: "192.0.2.2:500".into(),
                fvrf: None,
                ivrf: None,
                username: Some("x\"} vpnd_child_sas 99\n#".into()),
                totals: Default::default(),
            }],
            ..EngineSnapshot::default()
        };
        let samples = parse(&encode(Arc::new(snap), None)).unwrap();
        assert_eq!(value(&samples, "vpnd_child_sas", &[]), Some(0.0));
        assert_eq!(
            value(&samples, "vpnd_session_bytes_total", &[("direction", "in")]),
            Some(0.0)
        );
        let s = samples
            .iter()
            .find(|s| s.name == "vpnd_session_bytes_total")
            .unwrap();
        assert_eq!(s.labels["username"], "x\"} vpnd_child_sas 99\n#");
    }

    #[test]
    fn every_family_is_present_with_accounting() {
        let mut snap = EngineSnapshot::default();
        snap.dump.observe(0.073);
        snap.counters.handshakes_established = 2;
        let acct = AccountingSnapshot {
            queued: 3,
            oldest_age_seconds: 12.5,
            servers: vec![],
        };
        let samples = parse(&encode(Arc::new(snap), Some(Arc::new(acct)))).unwrap();
        let v = |n, l: &[(&str, &str)]| value(&samples, n, l);
        assert_eq!(v("vpnd_kernel_dump_duration_seconds_count", &[]), Some(1.0));
        assert_eq!(
            v(
                "vpnd_kernel_dump_duration_seconds_bucket",
                &[("le", "0.05")]
            ),
            Some(0.0)
        );
        assert_eq!(
            v("vpnd_kernel_dump_duration_seconds_bucket", &[("le", "0.1")]),
            Some(1.0)
        );
        assert_eq!(
            v(
                "vpnd_kernel_dump_duration_seconds_bucket",
                &[("le", "+Inf")]
            ),
            Some(1.0)
        );
        assert_eq!(
            v("vpnd_ike_handshakes_total", &[("result", "established")]),
            Some(2.0)
        );
        assert_eq!(v("vpnd_accounting_outbox_records", &[]), Some(3.0));
        assert_eq!(
            v("vpnd_accounting_outbox_oldest_age_seconds", &[]),
            Some(12.5)
        );
    }

    #[test]
    fn ten_thousand_sessions_make_forty_thousand_series() {
        let sessions: Vec<SessionSample> = (0..10_000u32)
            .map(|i| SessionSample {
                peer: "clients".into(),
                remote: format!("10.{}.{}.{}:500", i >> 16, (i >> 8) & 255, i & 255),
                fvrf: None,
                ivrf: None,
                username: Some(format!("client{i}.example")),
                totals: crate::session::model::Totals {
                    bytes_in: u64::from(i),
                    ..Default::default()
                },
            })
            .collect();
        let snap = Arc::new(EngineSnapshot {
            sessions,
            ..EngineSnapshot::default()
        });
        let started = std::time::Instant::now();
        let text = encode(snap, None);
        let took = started.elapsed();
        let samples = parse(&text).unwrap();
        let per_session = samples
            .iter()
            .filter(|s| s.name.starts_with("vpnd_session_"))
            .count();
        assert_eq!(per_session, 40_000);
        assert_eq!(
            value(
                &samples,
                "vpnd_session_bytes_total",
                &[("direction", "in"), ("username", "client9999.example")]
            ),
            Some(9999.0)
        );
        eprintln!("encoding 10,000 sessions: {took:?}, {} bytes", text.len());
    }
}
