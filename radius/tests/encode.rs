//! The Accounting-Request encoding, checked against an independent MD5 and the `radius`
//! crate's decoder.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use radius::core::packet::Packet;
use radius::core::{rfc2865, rfc2866, rfc2869, rfc3162, rfc6911};
use vpnd_radius::{gigawords, terminate_cause, AccountingRecord, AcctStatus};

const SECRET: &[u8] = b"s3cret-shared";

fn event_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn stop_record() -> AccountingRecord {
    AccountingRecord {
        user_name: Some("joe@cclient".into()),
        nas_ip: Some(IpAddr::V4(Ipv4Addr::new(100, 1, 1, 147))),
        nas_identifier: Some("gw1".into()),
        nas_port: Some(0),
        framed_ip: Some(Ipv4Addr::new(10, 13, 13, 1)),
        framed_ipv6: Some("2001:db8:77::1".parse().unwrap()),
        cisco_avpairs: vec![
            "vrf-id=cisco".into(),
            "isakmp-initator-ip=192.0.2.2".into(),
            "isakmp-group-id=cclient".into(),
            "isakmp-phase1-id=peer.example".into(),
            "connect-progress=No Progress".into(),
            "disc-cause-ext=No Reason".into(),
        ],
        cisco_nas_port: Some("FastEthernet0/0.1".into()),
        session_time: Some(709),
        input_octets: Some(152_608),
        output_octets: Some(5 * (1 << 32) + 7),
        input_packets: Some(1004),
        output_packets: Some((1 << 32) + 3),
        terminate_cause: Some(terminate_cause::USER_REQUEST),
        ..AccountingRecord::new(AcctStatus::Stop, "00000002", event_time())
    }
}

/// (vendor, vendor type, value) of every Vendor-Specific attribute, parsed by hand.
fn vsas(packet: &Packet) -> Vec<(u32, u8, String)> {
    packet
        .lookup_all(rfc2865::VENDOR_SPECIFIC_TYPE)
        .into_iter()
        .map(|avp| {
            let v = avp.encode_bytes();
            let vendor = u32::from_be_bytes(v[..4].try_into().unwrap());
            assert_eq!(v[5] as usize, v.len() - 4, "vendor length");
            (vendor, v[4], String::from_utf8(v[6..].to_vec()).unwrap())
        })
        .collect()
}

#[test]
fn request_authenticator_matches_independent_md5() {
    let rec = stop_record();
    let bytes = rec.encode(19, SECRET, 3);
    assert_eq!(bytes[0], 4, "code Accounting-Request");
    assert_eq!(bytes[1], 19, "identifier");
    assert_eq!(
        u16::from_be_bytes([bytes[2], bytes[3]]) as usize,
        bytes.len()
    );
    assert_eq!(
        &bytes[4..20],
        &common::request_authenticator(&bytes, SECRET)
    );
    // And the radius crate agrees, as a server would check it.
    assert!(Packet::is_authentic_request(&bytes, SECRET));
    assert!(!Packet::is_authentic_request(&bytes, b"other secret"));
    // Another delay is another authenticator (the reason the identifier must change).
    let again = rec.encode(19, SECRET, 4);
    assert_ne!(&bytes[4..20], &again[4..20]);
    assert_eq!(
        &again[4..20],
        &common::request_authenticator(&again, SECRET)
    );
}

#[test]
fn every_attribute_decodes_with_the_radius_crate() {
    let rec = stop_record();
    let bytes = rec.encode(7, SECRET, 42);
    let p = Packet::decode(&bytes, SECRET).expect("decodes");
    assert_eq!(p.get_identifier(), 7);
    assert_eq!(rfc2866::lookup_acct_status_type(&p).unwrap().unwrap(), 2);
    assert_eq!(
        rfc2866::lookup_acct_session_id(&p).unwrap().unwrap(),
        "00000002"
    );
    assert_eq!(
        rfc2865::lookup_user_name(&p).unwrap().unwrap(),
        "joe@cclient"
    );
    assert_eq!(
        rfc2865::lookup_nas_ip_address(&p).unwrap().unwrap(),
        Ipv4Addr::new(100, 1, 1, 147)
    );
    assert!(rfc3162::lookup_nas_ipv6_address(&p).is_none());
    assert_eq!(rfc2865::lookup_nas_identifier(&p).unwrap().unwrap(), "gw1");
    assert_eq!(rfc2865::lookup_nas_port(&p).unwrap().unwrap(), 0);
    assert_eq!(
        rfc2865::lookup_framed_ip_address(&p).unwrap().unwrap(),
        Ipv4Addr::new(10, 13, 13, 1)
    );
    assert_eq!(
        rfc6911::lookup_framed_ipv6_address(&p).unwrap().unwrap(),
        "2001:db8:77::1".parse::<Ipv6Addr>().unwrap(),
        "Framed-IPv6-Address (RFC 6911) of a dual-stack client"
    );
    assert_eq!(rfc2866::lookup_acct_session_time(&p).unwrap().unwrap(), 709);
    assert_eq!(
        rfc2866::lookup_acct_input_octets(&p).unwrap().unwrap(),
        152_608
    );
    assert_eq!(
        rfc2869::lookup_acct_input_gigawords(&p).unwrap().unwrap(),
        0
    );
    assert_eq!(rfc2866::lookup_acct_output_octets(&p).unwrap().unwrap(), 7);
    assert_eq!(
        rfc2869::lookup_acct_output_gigawords(&p).unwrap().unwrap(),
        5
    );
    assert_eq!(
        rfc2866::lookup_acct_input_packets(&p).unwrap().unwrap(),
        1004
    );
    assert_eq!(
        rfc2866::lookup_acct_output_packets(&p).unwrap().unwrap(),
        u32::MAX,
        "saturated"
    );
    assert_eq!(
        rfc2866::lookup_acct_terminate_cause(&p).unwrap().unwrap(),
        1
    );
    assert_eq!(rfc2866::lookup_acct_delay_time(&p).unwrap().unwrap(), 42);
    assert_eq!(
        p.lookup(rfc2869::EVENT_TIMESTAMP_TYPE)
            .unwrap()
            .encode_u32()
            .unwrap(),
        1_700_000_000
    );
    let mut expected: Vec<(u32, u8, String)> = rec
        .cisco_avpairs
        .iter()
        .map(|s| (9, 1, s.clone()))
        .collect();
    expected.push((9, 2, "FastEthernet0/0.1".into()));
    assert_eq!(vsas(&p), expected);
    // Each attribute once, except the VSAs.
    let attrs = common::attributes(&bytes);
    for t in [
        1u8, 4, 5, 8, 32, 40, 41, 42, 43, 44, 46, 47, 48, 49, 52, 53, 55,
    ] {
        assert_eq!(
            attrs.iter().filter(|(a, _)| *a == t).count(),
            1,
            "attribute {t}"
        );
    }
}

#[test]
fn status_values() {
    for (status, code) in [
        (AcctStatus::Start, 1),
        (AcctStatus::Stop, 2),
        (AcctStatus::InterimUpdate, 3),
        (AcctStatus::AccountingOn, 7),
        (AcctStatus::AccountingOff, 8),
    ] {
        let bytes = AccountingRecord::new(status, "x", event_time()).encode(1, SECRET, 0);
        assert_eq!(common::u32_attr(&bytes, 40), Some(code), "{status:?}");
    }
}

#[test]
fn gigawords_at_the_wrap() {
    let cases: [(u64, u32, u32); 7] = [
        (0, 0, 0),
        ((1 << 32) - 1, u32::MAX, 0),
        (1 << 32, 0, 1),
        ((1 << 32) + 5, 5, 1),
        (5 * (1 << 32) + 7, 7, 5),
        (u64::MAX, u32::MAX, u32::MAX),
        (123_456_789, 123_456_789, 0),
    ];
    for (total, low, giga) in cases {
        assert_eq!(gigawords(total), (low, giga), "{total}");
        let rec = AccountingRecord {
            input_octets: Some(total),
            output_octets: Some(total),
            ..AccountingRecord::new(AcctStatus::InterimUpdate, "g", event_time())
        };
        let p = Packet::decode(&rec.encode(1, SECRET, 0), SECRET).unwrap();
        let in_low = rfc2866::lookup_acct_input_octets(&p).unwrap().unwrap();
        let in_giga = rfc2869::lookup_acct_input_gigawords(&p).unwrap().unwrap();
        let out_low = rfc2866::lookup_acct_output_octets(&p).unwrap().unwrap();
        let out_giga = rfc2869::lookup_acct_output_gigawords(&p).unwrap().unwrap();
        assert_eq!((in_low, in_giga), (low, giga), "input {total}");
        assert_eq!((out_low, out_giga), (low, giga), "output {total}");
        assert_eq!(((in_giga as u64) << 32) | in_low as u64, total);
    }
}

#[test]
fn no_vendor_attributes_without_send_vsas() {
    let rec = AccountingRecord {
        send_vsas: false,
        ..stop_record()
    };
    let bytes = rec.encode(1, SECRET, 0);
    assert!(common::attributes(&bytes).iter().all(|(t, _)| *t != 26));
    assert_eq!(
        &bytes[4..20],
        &common::request_authenticator(&bytes, SECRET)
    );
}

#[test]
fn ipv6_nas_address_and_absent_options() {
    let v6: Ipv6Addr = "2001:db8::1".parse().unwrap();
    let rec = AccountingRecord {
        nas_ip: Some(IpAddr::V6(v6)),
        user_name: Some(String::new()),
        ..AccountingRecord::new(AcctStatus::Start, "s1", event_time())
    };
    let bytes = rec.encode(1, SECRET, 0);
    let p = Packet::decode(&bytes, SECRET).unwrap();
    assert_eq!(rfc3162::lookup_nas_ipv6_address(&p).unwrap().unwrap(), v6);
    assert!(rfc2865::lookup_nas_ip_address(&p).is_none());
    // Only status, session id, event timestamp, delay and NAS-IPv6; no empty User-Name.
    let mut types: Vec<u8> = common::attributes(&bytes).iter().map(|(t, _)| *t).collect();
    types.sort();
    assert_eq!(types, vec![40, 41, 44, 55, 95]);
}

#[test]
fn oversized_values_are_cut_to_fit() {
    let long = "é".repeat(200); // 400 octets, 2 per character
    let mut rec = stop_record();
    rec.user_name = Some(long.clone());
    rec.cisco_avpairs = (0..40)
        .map(|i| format!("isakmp-phase1-id={i}-{long}"))
        .collect();
    let bytes = rec.encode(1, SECRET, 0);
    assert!(bytes.len() <= 4096);
    assert_eq!(
        &bytes[4..20],
        &common::request_authenticator(&bytes, SECRET)
    );
    let p = Packet::decode(&bytes, SECRET).unwrap();
    let user = rfc2865::lookup_user_name(&p).unwrap().unwrap();
    assert!(user.len() <= 253 && user.len() >= 252 && long.starts_with(&user));
    let pairs = vsas(&p);
    assert!(
        !pairs.is_empty() && pairs.len() < 40,
        "some AVPairs left out: {}",
        pairs.len()
    );
    for (i, (_, typ, value)) in pairs.iter().enumerate().filter(|(_, v)| v.1 == 1) {
        assert_eq!(*typ, 1);
        assert!(value.len() <= 247);
        assert!(
            rec.cisco_avpairs[i].starts_with(value.as_str()),
            "kept in order"
        );
    }
    // The standard attributes after the AVPairs all made it.
    assert_eq!(rfc2866::lookup_acct_status_type(&p).unwrap().unwrap(), 2);
    assert_eq!(rfc2866::lookup_acct_delay_time(&p).unwrap().unwrap(), 0);
    assert_eq!(
        vsas(&p).last().unwrap(),
        &(9, 2, "FastEthernet0/0.1".to_string())
    );
}

#[test]
fn delay_counts_whole_seconds_since_the_event() {
    let rec = AccountingRecord::new(AcctStatus::Start, "d", event_time());
    assert_eq!(
        rec.delay_at(event_time() + Duration::from_millis(10_900)),
        10
    );
    assert_eq!(
        rec.delay_at(event_time() - Duration::from_secs(5)),
        0,
        "clock went back"
    );
}

#[test]
fn record_round_trips_through_json() {
    let rec = stop_record();
    let json = serde_json::to_string(&rec).unwrap();
    let back: AccountingRecord = serde_json::from_str(&json).unwrap();
    assert_eq!(back, rec);
    assert_eq!(back.encode(9, SECRET, 1), rec.encode(9, SECRET, 1));
}
