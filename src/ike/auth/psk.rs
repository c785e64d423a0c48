//! Shared-key AUTH payloads (RFC 7296 2.15).

use zeroize::Zeroizing;

use crate::ike::crypto::{ct_eq, CryptoError, Prf};

/// RFC 7296 2.15: the pad that turns a PSK into the AUTH key.
const KEY_PAD: &[u8] = b"Key Pad for IKEv2";

/// AUTH = prf(prf(PSK, "Key Pad for IKEv2"), SignedOctets), with
/// SignedOctets = RealMessage | Nonce(peer) | prf(SK_p, IDx').
///
/// - `real_message`: the signer's first message, as sent (IKE_SA_INIT request for the
///   initiator, IKE_SA_INIT response for the responder).
/// - `peer_nonce`: the other side's nonce data (Nr for the initiator, Ni for the responder).
/// - `sk_p`: the signer's SK_pi or SK_pr.
/// - `id_body`: the signer's ID payload body without the generic header (IDx'), i.e. the
///   `IdPayload` encoding, as received when verifying.
pub fn psk_auth(
    prf: Prf,
    psk: &[u8],
    real_message: &[u8],
    peer_nonce: &[u8],
    sk_p: &[u8],
    id_body: &[u8],
) -> Zeroizing<Vec<u8>> {
    let maced_id = prf.prf(sk_p, id_body);
    let key = prf.prf(psk, KEY_PAD);
    prf.prf_parts(&key, &[real_message, peer_nonce, &maced_id])
}

/// Checks a received PSK AUTH value in constant time; the pieces are the peer's (see
/// [`psk_auth`]). Failure maps to AUTHENTICATION_FAILED.
pub fn verify_psk_auth(
    prf: Prf,
    psk: &[u8],
    real_message: &[u8],
    peer_nonce: &[u8],
    sk_p: &[u8],
    id_body: &[u8],
    received: &[u8],
) -> Result<(), CryptoError> {
    let expected = psk_auth(prf, psk, real_message, peer_nonce, sk_p, id_body);
    if ct_eq(&expected, received) {
        Ok(())
    } else {
        Err(CryptoError::AuthenticationFailed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::codec::{Codec, IdPayload, Identity};

    #[test]
    fn matches_the_formula_and_verifies() {
        let prf = Prf::HmacSha256;
        let psk = b"correct horse battery staple";
        let msg = [0x55u8; 216];
        let nr = [0x4eu8; 32];
        let sk_pi = [0x11u8; 32];
        let id = IdPayload::new(Identity::Fqdn("client.example".into())).get_encoding();

        let auth = psk_auth(prf, psk, &msg, &nr, &sk_pi, &id);
        let inner = prf.prf(psk, b"Key Pad for IKEv2");
        let mut octets = msg.to_vec();
        octets.extend_from_slice(&nr);
        octets.extend_from_slice(&prf.prf(&sk_pi, &id));
        assert_eq!(*auth, *prf.prf(&inner, &octets));
        assert_eq!(auth.len(), 32);

        assert!(verify_psk_auth(prf, psk, &msg, &nr, &sk_pi, &id, &auth).is_ok());
        let mut bad = auth.to_vec();
        bad[31] ^= 1;
        assert_eq!(
            verify_psk_auth(prf, psk, &msg, &nr, &sk_pi, &id, &bad),
            Err(CryptoError::AuthenticationFailed)
        );
        assert!(verify_psk_auth(prf, b"wrong", &msg, &nr, &sk_pi, &id, &auth).is_err());
        assert!(verify_psk_auth(prf, psk, &msg, &nr, &sk_pi, &id, &auth[..16]).is_err());
    }
}
