//! Why an exchange did not go through, as types: [`Refusal`] is what we refuse in a peer's
//! message, mapped to the Notify we answer (RFC 7296 3.10.1, as rustls maps its errors to
//! alerts); [`Failure`] is why an IKE SA never came up, carried by
//! [`DownReason::NegotiationFailed`](super::DownReason::NegotiationFailed).

use std::fmt;

use super::codec::{ExchangeType, NotifyType};
use super::crypto::DhGroup;

/// A request (or response) of the peer's that we refuse. The text is for the log; the
/// variant decides the Notify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No proposal of the peer's is acceptable, or an answer chose one we did not offer
    /// (2.7).
    #[error("no acceptable proposal: {0}")]
    NoProposalChosen(String),
    /// The traffic selectors match no child configuration (2.9).
    #[error("traffic selectors unacceptable: {0}")]
    TsUnacceptable(String),
    /// The peer's identity or AUTH payload does not verify (2.15).
    #[error("authentication failed: {0}")]
    AuthFailed(super::auth::AuthRefusal),
    /// The KE payload is for another group than the chosen one: the peer retries with
    /// this one (1.2, 1.3).
    #[error("KE payload of another group; {wanted:?} wanted")]
    InvalidKe { wanted: DhGroup },
    /// A payload is missing or makes no sense (3.10.1).
    #[error("invalid syntax: {0}")]
    InvalidSyntax(String),
    /// Not now: a collision or an SA on its way out (2.25); the peer retries later.
    #[error("temporarily refused: {0}")]
    TemporaryFailure(String),
    /// REKEY_SA names no child SA we have (1.3.3).
    #[error("no child SA with SPI {0:08x}")]
    ChildSaNotFound(u32),
}

impl Refusal {
    /// The Notify this refusal is answered with.
    pub fn notify(&self) -> NotifyType {
        match self {
            Refusal::NoProposalChosen(_) => NotifyType::NO_PROPOSAL_CHOSEN,
            Refusal::TsUnacceptable(_) => NotifyType::TS_UNACCEPTABLE,
            Refusal::AuthFailed(_) => NotifyType::AUTHENTICATION_FAILED,
            Refusal::InvalidKe { .. } => NotifyType::INVALID_KE_PAYLOAD,
            Refusal::InvalidSyntax(_) => NotifyType::INVALID_SYNTAX,
            Refusal::TemporaryFailure(_) => NotifyType::TEMPORARY_FAILURE,
            Refusal::ChildSaNotFound(_) => NotifyType::CHILD_SA_NOT_FOUND,
        }
    }

    /// The Notify's data: the group we want for INVALID_KE_PAYLOAD (3.10.1), else none.
    pub fn notify_data(&self) -> Vec<u8> {
        match self {
            Refusal::InvalidKe { wanted } => wanted.id().0.to_be_bytes().to_vec(),
            _ => Vec::new(),
        }
    }
}

/// Why IKE_SA_INIT or IKE_AUTH did not bring the IKE SA up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// We refused the peer (and told it so where there was a request to answer).
    Refused(Refusal),
    /// The peer answered our request with this error Notify.
    PeerRefused {
        exchange: ExchangeType,
        notify: NotifyType,
    },
    /// Our request went unanswered through every retransmission (2.4).
    Unanswered { exchange: ExchangeType, sends: u32 },
    /// We answered IKE_SA_INIT and no IKE_AUTH followed.
    NoIkeAuth,
    /// Our own side could not go on (configuration, key generation or derivation).
    Local(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Refused(r) => write!(f, "we refused the peer: {r}"),
            Failure::PeerRefused { exchange, notify } => {
                write!(f, "peer answered {exchange:?} with {notify:?}")
            }
            Failure::Unanswered { exchange, sends } => {
                write!(f, "{exchange:?} request unanswered after {sends} sends")
            }
            Failure::NoIkeAuth => f.write_str("no IKE_AUTH from the peer"),
            Failure::Local(why) => f.write_str(why),
        }
    }
}

impl From<Refusal> for Failure {
    fn from(r: Refusal) -> Failure {
        Failure::Refused(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_map_to_their_notify() {
        let ke = Refusal::InvalidKe {
            wanted: DhGroup::Curve25519,
        };
        assert_eq!(ke.notify(), NotifyType::INVALID_KE_PAYLOAD);
        assert_eq!(ke.notify_data(), vec![0, 31], "the group we want (3.10.1)");
        let ts = Refusal::TsUnacceptable("no child policy matches".into());
        assert_eq!(ts.notify(), NotifyType::TS_UNACCEPTABLE);
        assert!(ts.notify_data().is_empty());
        assert_eq!(
            Refusal::ChildSaNotFound(0x1234).notify(),
            NotifyType::CHILD_SA_NOT_FOUND
        );
        let down = crate::ike::DownReason::NegotiationFailed(Failure::Refused(
            Refusal::AuthFailed("AUTH does not verify".into()),
        ));
        assert_eq!(
            down.to_string(),
            "negotiation failed: we refused the peer: authentication failed: AUTH does not verify"
        );
    }
}
