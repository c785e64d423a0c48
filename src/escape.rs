//! Peer-supplied text made safe for an operator's terminal, syslog and RADIUS.
//!
//! An IKE peer chooses its identity (RFC 7296 3.5: ID_FQDN and ID_RFC822_ADDR are any
//! octets, no character set is enforced), and a PSK holder once put ANSI escapes and fake
//! lines into `show crypto session` that way. Every peer string is escaped once, where it
//! enters the daemon, so no output path can forget: control characters (C0, DEL, C1), the
//! Unicode bidirectional overrides and isolates (which reorder what a terminal shows), and
//! the backslash itself (so an escape is never ambiguous) become `\xNN` / `\u{NNNN}`.
//! JSON output escapes again on its own terms; that is harmless.

/// Whether a character would change what an operator sees beyond itself.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// `s` with every unsafe character escaped; unchanged (no allocation beyond the copy) when
/// there is none.
pub fn peer_text(s: &str) -> String {
    if !s.chars().any(|c| is_unsafe(c) || c == '\\') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if is_unsafe(c) && (c as u32) < 0x100 => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if is_unsafe(c) => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Octets from the wire as text: valid UTF-8 is kept (then escaped), any other octet becomes
/// `\xNN`.
pub fn peer_bytes(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => peer_text(s),
        Err(_) => {
            let mut out = String::new();
            for chunk in b.utf8_chunks() {
                out.push_str(&peer_text(chunk.valid()));
                for x in chunk.invalid() {
                    out.push_str(&format!("\\x{x:02x}"));
                }
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_and_bidi_overrides_are_escaped() {
        assert_eq!(peer_text("peer1.lab.example"), "peer1.lab.example");
        let evil = "ok\x1b[2J\r\nPeer: 10.0.0.1 port 500\u{202e}gnp.exe\u{7f}\u{85}\\x";
        let e = peer_text(evil);
        assert_eq!(
            e,
            "ok\\x1b[2J\\x0d\\x0aPeer: 10.0.0.1 port 500\\u{202e}gnp.exe\\x7f\\x85\\\\x"
        );
        assert!(!e.chars().any(is_unsafe), "{e:?}");
        // Printable non-ASCII stays as it is.
        assert_eq!(peer_text("zürich-gw"), "zürich-gw");
    }

    #[test]
    fn invalid_utf8_becomes_hex() {
        assert_eq!(peer_bytes(b"a\xffb\x1b"), "a\\xffb\\x1b");
        assert_eq!(peer_bytes("é".as_bytes()), "é");
    }
}
