//! Fuzz targets, not an API (hidden from the docs). Each `pub fn name(data: &[u8])` below
//! is one target, shared by the bounded runs in `cargo test` (`tests/fuzz_targets.rs`) and
//! by cargo-fuzz (`fuzz/fuzz_targets/`). A target panics exactly when it has found a bug: a
//! panic in the code under test or a broken invariant (asserted here). The XFRM dump reader
//! and RADIUS response targets live in `vpnd_xfrm::fuzzing` and `vpnd_radius::fuzzing`.
//!
//! `seeds` builds valid inputs for each target from the engine itself (a real handshake
//! between two endpoints with deterministic randomness), so mutations start deep.

mod lab;
pub use lab::Stats as EndpointStats;
mod mutator;
pub mod seeds;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub use mutator::{hex, run_bounded, Bounded, Mutator, Report};

use crate::config::Config;
use crate::control::{cli, proto};
use crate::ike::codec::{
    check_critical, decode_chain, encode_chain, Header, Message, Payload, PayloadList, PayloadType,
    ProtocolId, TrafficSelector,
};
use crate::ike::crypto::cipher::{Encr, Integ, OpenError, SkCipher};
use crate::ike::crypto::CryptoError;
use crate::ike::negotiate;
use crate::ike::proposal::{Proposal, ProposalKind};

/// A peer's certificates and AUTH against a trust point, all from the input:
/// `[ca_len: u16][CA DER][n: u8] n × ([len: u16][cert DER])` then the AUTH payload body
/// (method, 3 reserved, data). Hostile DER must never panic webpki, x509-parser or our
/// identity and signature code; a certificate that verifies must give a public key that
/// the AUTH check accepts or refuses cleanly.
pub fn peer_certificate(data: &[u8]) {
    use crate::ike::auth::{signature, TrustPoint};
    use crate::ike::codec::{AuthPayload, Codec, Identity};
    fn take<'a>(d: &mut &'a [u8]) -> Option<&'a [u8]> {
        let (l, rest) = d.split_first_chunk::<2>()?;
        let l = u16::from_be_bytes(*l) as usize;
        if rest.len() < l {
            return None;
        }
        let (x, rest) = rest.split_at(l);
        *d = rest;
        Some(x)
    }
    let mut d = data;
    let Some(ca) = take(&mut d) else { return };
    let Some((&n, rest)) = d.split_first() else {
        return;
    };
    d = rest;
    let mut certs = Vec::new();
    for _ in 0..n.min(4) {
        match take(&mut d) {
            Some(c) => certs.push(c),
            None => return,
        }
    }
    let Ok(tp) = TrustPoint::new("fuzz", &[ca.to_vec()], &[]) else {
        return;
    };
    assert_eq!(tp.certreq_data().len(), 20);
    // 2026-06-01, and the identities a certificate may name.
    for id in [
        Identity::Fqdn("moon.example".into()),
        Identity::UserFqdn("moon@example.org".into()),
        Identity::Ipv4("192.0.2.7".parse().unwrap()),
    ] {
        match tp.verify(&certs, &id, 1_780_272_000) {
            Ok(peer) => {
                if let Ok(auth) = AuthPayload::read_bytes(d) {
                    let _ = signature::verify(&peer.public, &auth, b"signed octets");
                }
            }
            Err(e) => {
                let _ = (e.kind(), e.to_string());
            }
        }
    }
}

/// The IKE message decoder: `Header::peek`, `Message::decode`, the critical-payload check
/// and every payload parser; and the same bytes as a payload chain whose first type is the
/// first byte (what a decrypted SK payload holds). Whatever decodes must re-encode to bytes
/// that decode to the same message, and re-encode identically (canonical form).
pub fn ike_message(data: &[u8]) {
    let peek = Header::peek(data);
    match Message::decode(data) {
        Ok(m) => {
            assert_eq!(
                peek.as_ref().ok(),
                Some(&m.header),
                "peek and decode disagree"
            );
            let _ = m.check_critical();
            exercise(&m.payloads);
            let again = m.encode().expect("a decoded message re-encodes");
            let back = Message::decode(&again).expect("a re-encoded message decodes");
            assert_eq!(back, m, "decode(encode(m)) != m");
            assert_eq!(back.encode().ok(), Some(again), "encoding is not canonical");
        }
        Err(e) => {
            let _ = (e.notify(), e.notify_data(), e.to_string());
        }
    }
    if let Some((&first, rest)) = data.split_first() {
        if let Ok(chain) = decode_chain(PayloadType(first), rest) {
            let _ = check_critical(&chain);
            exercise(&chain);
            let (f, bytes) = encode_chain(&chain).expect("a decoded chain re-encodes");
            assert_eq!(
                decode_chain(f, &bytes).as_ref(),
                Ok(&chain),
                "chain round trip"
            );
        }
    }
}

/// The fragment reassembler (RFC 7383 2.6) fed a program of verified fragments: records of
/// Fragment Number (2 octets), Total Fragments (2), the Next Payload (1), a message ID (1), a
/// clock step in seconds (1), a body length (1) and the body. Whatever comes, every
/// fragment counts exactly once (kept, duplicate, invalid or over the bounds), what is held
/// stays within [`MAX_FRAGMENTS`](crate::ike::fragment::MAX_FRAGMENTS) and
/// [`MAX_REASSEMBLED`](crate::ike::fragment::MAX_REASSEMBLED) and is what the
/// `held_bytes` gauge says, and a message completes
/// only on a valid fragment, with its first type from a fragment 1.
pub fn fragments(data: &[u8]) {
    use crate::ike::codec::SkfPayload;
    use crate::ike::fragment::{Added, FragStats, Reassembly, MAX_FRAGMENTS, MAX_REASSEMBLED};
    let start = std::time::Instant::now();
    let mut now = start;
    let mut r = Reassembly::default();
    let mut stats = FragStats::default();
    let mut seen_first: std::collections::HashSet<u8> = Default::default();
    let mut rest = data;
    while rest.len() >= 8 {
        let (h, tail) = rest.split_at(8);
        let n = usize::from(h[7]).min(tail.len());
        let (body, tail) = tail.split_at(n);
        rest = tail;
        let f = SkfPayload {
            number: u16::from_be_bytes([h[0], h[1]]),
            total: u16::from_be_bytes([h[2], h[3]]),
            first_inner: PayloadType(h[4]),
            body: Vec::new(),
        };
        let id = u32::from(h[5]);
        now += std::time::Duration::from_secs(u64::from(h[6]));
        if f.number == 1 {
            seen_first.insert(h[5]);
        }
        let counted = |s: &FragStats| {
            s.fragments_received + s.dropped_duplicate + s.dropped_invalid + s.dropped_limit
        };
        let before = counted(&stats);
        let added = r.add(now, id, &f, body.to_vec(), &mut stats);
        assert_eq!(
            counted(&stats),
            before + 1,
            "a fragment counted once: {stats:?}"
        );
        let (have, bytes) = r.held();
        assert!(have <= MAX_FRAGMENTS && bytes <= MAX_REASSEMBLED);
        assert_eq!(stats.held_bytes, bytes as u64, "the gauge is what is held");
        if let Added::Complete(first, whole) = added {
            assert!(f.number >= 1 && f.number <= f.total && f.total <= MAX_FRAGMENTS);
            assert!(whole.len() <= MAX_REASSEMBLED && whole.len() >= body.len());
            assert!(
                first == PayloadType::NONE || seen_first.contains(&h[5]),
                "a first type without a fragment 1"
            );
            assert_eq!(r.held(), (0, 0), "a completed set is let go");
        }
        if let Some(d) = r.deadline() {
            assert!(d > now, "a set past its deadline is held");
        }
    }
}

/// What the engine does with decoded payloads before any state changes: proposal choice
/// against our offers, algorithm mapping, traffic selector narrowing (whose results must
/// lie within both sides' selectors).
fn exercise(payloads: &[Payload]) {
    static OFFERS: OnceLock<Vec<(crate::ike::codec::SaPayload, ProtocolId)>> = OnceLock::new();
    let offers = OFFERS.get_or_init(|| {
        let ike: Vec<Proposal> = [
            "aes256gcm16-prfsha256-x25519",
            "aes128-sha256-ecp256",
            "aes256-sha512-modp2048",
        ]
        .iter()
        .map(|p| Proposal::parse(p, ProposalKind::Ike).unwrap())
        .collect();
        let esp: Vec<Proposal> = ["aes256gcm16", "aes128-sha256-esn", "aes256-sha384-x25519"]
            .iter()
            .map(|p| Proposal::parse(p, ProposalKind::Esp).unwrap())
            .collect();
        vec![
            (negotiate::ike_sa_payload(&ike, &[]), ProtocolId::IKE),
            (
                negotiate::esp_sa_payload(&esp, 0xc000_0001, true, None),
                ProtocolId::ESP,
            ),
        ]
    });
    if let Some(sa) = payloads.sa() {
        for p in &sa.proposals {
            for t in &p.transforms {
                let _ = (t.key_length(), t.has_unknown_attributes());
            }
            let _ = negotiate::esp_spi(p);
        }
        for (ours, proto) in offers {
            if let Some(chosen) = negotiate::choose(sa, ours, *proto) {
                let _ = (negotiate::ike_algs(&chosen), negotiate::esp_algs(&chosen));
            }
            let _ = negotiate::accepted(sa, ours);
        }
    }
    let allowed: [TrafficSelector; 2] = [
        TrafficSelector::new(
            0,
            0,
            65535,
            "198.51.100.0".parse().unwrap(),
            "198.51.100.127".parse().unwrap(),
        )
        .unwrap(),
        TrafficSelector::new(
            6,
            443,
            443,
            "::".parse().unwrap(),
            "::ffff".parse().unwrap(),
        )
        .unwrap(),
    ];
    for ts in [payloads.ts_i(), payloads.ts_r()].into_iter().flatten() {
        let proposed: Vec<TrafficSelector> = ts.ip_selectors().cloned().collect();
        let narrowed = negotiate::narrow(&proposed, &allowed);
        if !narrowed.is_empty() {
            assert!(
                negotiate::within(&narrowed, &allowed),
                "narrowed beyond policy"
            );
            assert!(
                negotiate::within(&narrowed, &proposed),
                "narrowed beyond proposal"
            );
        }
        for t in &proposed {
            let _ = (t.ts_type(), t.start_addr(), t.end_addr());
        }
    }
    for id in [payloads.id_i(), payloads.id_r()].into_iter().flatten() {
        let _ = (id.identity.id_type(), id.identity.data());
    }
    let _ = (
        payloads.error_notify(),
        payloads.deletes().count(),
        payloads.cp(),
    );
}

/// One SK payload key set from a real IKE_SA_INIT, for the SK target.
pub(crate) struct SkFixture {
    pub header: Header,
    /// The initiator's real IKE_AUTH request, encrypted.
    pub auth: Vec<u8>,
    /// Its decrypted inner chain and first payload type.
    pub plain: Vec<u8>,
    pub first_inner: PayloadType,
    pub cipher: SkCipher,
    pub encr: Encr,
    pub integ: Option<Integ>,
    pub sk_e: Vec<u8>,
    pub sk_a: Vec<u8>,
}

pub(crate) fn sk_fixtures() -> &'static [SkFixture] {
    static F: OnceLock<Vec<SkFixture>> = OnceLock::new();
    F.get_or_init(|| {
        (0..lab::SUITES.len() as u8)
            .map(seeds::sk_fixture)
            .collect()
    })
}

/// The SK payload decrypt path with the keys of a real IKE SA (AES-GCM-256 and
/// AES-CBC-128 + HMAC-SHA-256). `data[0]` even: the rest is a datagram, opened with every
/// key set (ICV check, sizes, padding). Odd: `[suite][first inner][plaintext...]` is sealed
/// here, independently of the code under test, with the plaintext's last byte as the pad
/// length, then opened: the result must be exactly what the plaintext says (the pad length
/// check, then the inner chain decoder), so mutations go past the ICV.
pub fn sk_payload(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let fixtures = sk_fixtures();
    if mode % 2 == 0 {
        if let Ok(msg) = Message::decode(rest) {
            for f in fixtures {
                if let Ok(inner) = f.cipher.open(rest, &msg) {
                    let _ = check_critical(&inner);
                    exercise(&inner);
                    let (first, bytes) = encode_chain(&inner).expect("re-encodes");
                    assert_eq!(decode_chain(first, &bytes).as_ref(), Ok(&inner));
                }
            }
        }
        // The decrypt primitive on an arbitrary prefix/body split.
        if !rest.is_empty() {
            let at = usize::from(rest[0]) % rest.len();
            for f in fixtures {
                let _ = f.cipher.decrypt(&rest[..at], &rest[at..]);
            }
        }
        return;
    }
    let [suite, first, plain @ ..] = rest else {
        return;
    };
    let f = &fixtures[usize::from(*suite) % fixtures.len()];
    let first = PayloadType(*first);
    let mut plain = plain.to_vec();
    if !f.encr.is_aead() {
        // CBC needs whole blocks: pad in front of the last byte (the pad length).
        while plain.len() % 16 != 0 {
            let at = plain.len().saturating_sub(1);
            plain.insert(at, 0);
        }
    }
    let iv: Vec<u8> = (0..f.encr.iv_len() as u8).map(|i| i ^ 0x5c).collect();
    let shell = Message {
        header: f.header,
        payloads: Vec::new(),
    };
    let body_len = iv.len() + plain.len() + f.cipher.icv_len();
    let Ok(mut datagram) = shell.encode_sk_prefix(first, body_len) else {
        return;
    };
    let body = seal_raw(f, &datagram, &plain, &iv);
    datagram.extend_from_slice(&body);
    let msg = Message::decode(&datagram).expect("an SK message we built decodes");
    let got = f.cipher.open(&datagram, &msg);
    let expected = match plain.split_last() {
        None => Err(OpenError::Crypto(CryptoError::MalformedCiphertext)),
        Some((&pad, _)) if usize::from(pad) + 1 > plain.len() => {
            Err(OpenError::Crypto(CryptoError::MalformedCiphertext))
        }
        Some((&pad, _)) => decode_chain(first, &plain[..plain.len() - usize::from(pad) - 1])
            .map_err(OpenError::Decode),
    };
    assert_eq!(got, expected, "SK open disagrees with the plaintext");
    if let Ok(inner) = got {
        let _ = check_critical(&inner);
        exercise(&inner);
    }
}

/// Encrypts `plain` (already padded, pad length last) as RFC 7296 3.14 / RFC 5282 say,
/// with aws-lc-rs directly: an oracle independent of `SkCipher::encrypt`.
fn seal_raw(f: &SkFixture, prefix: &[u8], plain: &[u8], iv: &[u8]) -> Vec<u8> {
    use aws_lc_rs::{aead, cipher, hmac};
    let mut body = iv.to_vec();
    match f.encr {
        Encr::AesGcm16 { key_bits } => {
            let (key, salt) = f.sk_e.split_at(f.sk_e.len() - 4);
            let alg = if key_bits == 128 {
                &aead::AES_128_GCM
            } else {
                &aead::AES_256_GCM
            };
            let key = aead::LessSafeKey::new(aead::UnboundKey::new(alg, key).unwrap());
            let mut nonce = [0u8; 12];
            nonce[..4].copy_from_slice(salt);
            nonce[4..].copy_from_slice(iv);
            let mut buf = plain.to_vec();
            let tag = key
                .seal_in_place_separate_tag(
                    aead::Nonce::assume_unique_for_key(nonce),
                    aead::Aad::from(prefix),
                    &mut buf,
                )
                .unwrap();
            body.extend_from_slice(&buf);
            body.extend_from_slice(tag.as_ref());
        }
        Encr::AesCbc { key_bits } => {
            let alg = if key_bits == 128 {
                &cipher::AES_128
            } else {
                &cipher::AES_256
            };
            let key =
                cipher::EncryptingKey::cbc(cipher::UnboundCipherKey::new(alg, &f.sk_e).unwrap())
                    .unwrap();
            let mut buf = plain.to_vec();
            let iv16: [u8; 16] = iv.try_into().unwrap();
            if !buf.is_empty() {
                key.less_safe_encrypt(&mut buf, cipher::EncryptionContext::Iv128(iv16.into()))
                    .unwrap();
            }
            body.extend_from_slice(&buf);
            let integ = f.integ.expect("CBC has an integrity transform");
            let alg = match integ {
                Integ::HmacSha1_96 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
                Integ::HmacSha256_128 => hmac::HMAC_SHA256,
                Integ::HmacSha384_192 => hmac::HMAC_SHA384,
                Integ::HmacSha512_256 => hmac::HMAC_SHA512,
            };
            let mut ctx = hmac::Context::with_key(&hmac::Key::new(alg, &f.sk_a));
            ctx.update(prefix);
            ctx.update(&body);
            let tag = ctx.sign();
            body.extend_from_slice(&tag.as_ref()[..integ.icv_len()]);
        }
    }
    body
}

/// The sans-IO endpoint fed arbitrary datagrams, sealed messages, replays, commands and
/// clock steps (see `lab.rs` for the program format and the invariants). `data[0]` picks the
/// initiator's suite.
pub fn endpoint(data: &[u8]) {
    endpoint_stats(data);
}

/// [`endpoint`], returning what the engines did.
pub fn endpoint_stats(data: &[u8]) -> lab::Stats {
    let Some((&suite, program)) = data.split_first() else {
        return lab::Stats::default();
    };
    let mut lab = lab::Lab::new(lab::SUITES[usize::from(suite) % lab::SUITES.len()]);
    lab.run_program(program);
    // Whatever state the program left, time must run out cleanly: every SA ends or waits.
    for _ in 0..8 {
        lab.op(4, &[]);
        lab.deliver(0);
    }
    lab.stats
}

/// One control-socket line as the server reads it (`\n` stripped), then the same text as
/// vpnctl words. A line longer than `MAX_REQUEST` is never accepted; an accepted request
/// survives `request_line` unchanged; whatever vpnctl accepts, the daemon accepts as sent.
pub fn control_line(data: &[u8]) {
    let line = data.strip_suffix(b"\n").unwrap_or(data);
    let r = proto::parse_request(line);
    if line.len() > proto::MAX_REQUEST {
        assert_eq!(
            r,
            Err(proto::RequestError::TooLong),
            "overlong line not refused"
        );
    }
    if let Ok(cmd) = &r {
        assert!(
            line.len() <= proto::MAX_REQUEST,
            "accepted an overlong line"
        );
        let again = proto::request_line(cmd.clone());
        assert_eq!(
            proto::parse_request(again.trim_end().as_bytes()).as_ref(),
            Ok(cmd),
            "request_line round trip"
        );
    }
    if let Err(e) = &r {
        let _ = proto::Response::error(e.to_string());
    }
    let Ok(text) = std::str::from_utf8(line) else {
        return;
    };
    if text.len() > 4096 {
        return;
    }
    let words = std::iter::once("vpnctl").chain(text.split_whitespace());
    if let Ok(inv) = cli::parse_from(words) {
        let request = inv.request();
        let sent = proto::request_line(request.clone());
        assert!(sent.len() <= proto::MAX_REQUEST);
        assert_eq!(
            proto::parse_request(sent.trim_end().as_bytes()),
            Ok(request),
            "the daemon refuses what vpnctl sends"
        );
    }
}

/// A directory with `site.psk`, so relative `psk_file` entries resolve.
fn config_dir() -> &'static Path {
    static D: OnceLock<PathBuf> = OnceLock::new();
    D.get_or_init(|| {
        let d = std::env::temp_dir().join("vpnd-fuzz-config");
        let _ = std::fs::create_dir_all(&d);
        let _ = std::fs::write(d.join("site.psk"), "a-fuzzed-psk-file\n");
        d
    })
}

/// Inputs whose `psk_file` could name a device, a FIFO or a huge file are skipped: reading
/// `/dev/zero` is the operator's own doing, not a parser bug. Only bare file names pass.
fn psk_file_is_safe(text: &str) -> bool {
    fn walk(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::Object(m) => m.iter().all(|(k, v)| {
                (k != "psk_file"
                    || v.as_str()
                        .is_none_or(|s| !s.contains('/') && !s.contains("..")))
                    && walk(v)
            }),
            serde_json::Value::Array(a) => a.iter().all(walk),
            _ => true,
        }
    }
    match serde_saphyr::from_str::<serde_json::Value>(text) {
        Ok(v) => walk(&v),
        Err(_) => !text.contains("psk") && !text.contains('\\'),
    }
}

/// The YAML configuration parser and validator. Loading is a pure function of the text
/// (and the psk files it names): the same text gives the same result twice; a refused
/// configuration comes back as at least one located problem (line within the text) naming
/// the file, never as a partial configuration.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if !psk_file_is_safe(text) {
        return;
    }
    let path = config_dir().join("vpnd.yaml");
    let first = Config::from_str(text, &path);
    let second = Config::from_str(text, &path);
    match (&first, &second) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b, "the same text loaded twice differs");
            assert!(a.peers.iter().all(|p| !p.name.is_empty()));
        }
        (Err(a), Err(b)) => {
            assert_eq!(
                a.to_string(),
                b.to_string(),
                "the same text fails differently"
            );
            // YAML ends a line at LF, CRLF or a lone CR (YAML 1.2 5.4), and so do the
            // parser's locations; `str::lines` would miss the lone CRs.
            let lines = text.replace("\r\n", "\n").matches(['\n', '\r']).count() as u64 + 1;
            assert!(!a.problems().is_empty(), "refused without a problem: {a}");
            for p in a.problems() {
                assert!(
                    p.line <= lines,
                    "problem at line {} of {lines}: {p}",
                    p.line
                );
                assert_eq!(p.file, path);
                assert!(p.to_string().starts_with(&*path.to_string_lossy()));
            }
        }
        _ => panic!("the same text loaded twice: once accepted, once refused"),
    }
}
