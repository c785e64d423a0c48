//! The IKEv2 wire format (RFC 7296 section 3), strict and panic-free.
//!
//! Everything here takes untrusted bytes: every length is checked against what is left, and every
//! failure is a [`DecodeError`] that says which Notify the engine should answer with.
//!
//! Typical use:
//! - receive: [`Header::peek`] to route by SPI, [`Message::decode`] for the whole datagram,
//!   [`Message::check_critical`] to refuse unknown critical payloads (RFC 7296 2.5), then the
//!   `find_*` helpers; an SK payload is opened with `crypto::cipher::SkCipher::open`.
//! - send: build a [`Message`] and call [`Message::encode`]; for encrypted messages use
//!   `crypto::cipher::SkCipher::seal` with the inner payloads.

mod enums;
mod header;
mod message;
mod reader;

pub mod auth;
pub mod cp;
pub mod delete;
pub mod id;
pub mod ke;
pub mod nonce;
pub mod notify;
pub mod sa;
pub mod sk;
pub mod ts;
pub mod vendor;

pub use auth::AuthPayload;
pub use cp::{CfgType, CpAttribute, CpPayload};
pub use delete::DeletePayload;
pub use enums::{
    AuthMethod, DhGroupId, EncrId, EsnId, ExchangeType, IdType, IntegId, NotifyType, PayloadType,
    PrfId, ProtocolId, TransformType, TsType,
};
pub use header::{Flags, Header, HEADER_LEN};
pub use id::{IdPayload, Identity};
pub use ke::KePayload;
pub use message::{
    check_critical, decode_chain, encode_chain, CertPayload, Message, Payload, PayloadList,
};
pub use nonce::NoncePayload;
pub use notify::NotifyPayload;
pub use reader::{Codec, Reader};
pub use sa::{AttrValue, Proposal, SaPayload, Transform, TransformAttr};
pub use sk::{SkPayload, SkfPayload, SKF_FIELDS_LEN};
pub use ts::{TrafficSelector, TsEntry, TsPayload};
pub use vendor::VendorPayload;

/// Why a received message was refused. [`DecodeError::notify`] gives the Notify to answer with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A field ran past the end of its enclosing structure.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// Bytes left over after a structure that must end exactly.
    #[error("trailing bytes after {0}")]
    TrailingData(&'static str),
    /// A length field is impossible (too small, or disagrees with the enclosing length).
    #[error("invalid length in {0}")]
    InvalidLength(&'static str),
    /// A field holds a value the RFC forbids.
    #[error("invalid {0}")]
    InvalidValue(&'static str),
    /// The IKE header's major version is not 2 (RFC 7296 2.5).
    #[error("unsupported IKE major version {0}")]
    UnsupportedMajorVersion(u8),
    /// The header's Length field differs from the datagram size (RFC 7296 3.1).
    #[error("IKE header length {header} differs from datagram length {datagram}")]
    LengthMismatch { header: u32, datagram: usize },
    /// An unknown payload type with the critical bit set (RFC 7296 2.5).
    #[error("unsupported critical payload {0:?}")]
    UnsupportedCriticalPayload(PayloadType),
}

impl DecodeError {
    /// The Notify that reports this error to the peer (RFC 7296 2.5, 3.10.1).
    pub fn notify(&self) -> NotifyType {
        match self {
            DecodeError::UnsupportedMajorVersion(_) => NotifyType::INVALID_MAJOR_VERSION,
            DecodeError::UnsupportedCriticalPayload(_) => NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD,
            _ => NotifyType::INVALID_SYNTAX,
        }
    }

    /// The Notification Data that goes with [`DecodeError::notify`]: the one-octet payload type
    /// for UNSUPPORTED_CRITICAL_PAYLOAD, the highest version we support (0x20) for
    /// INVALID_MAJOR_VERSION, nothing otherwise.
    pub fn notify_data(&self) -> Vec<u8> {
        match self {
            DecodeError::UnsupportedCriticalPayload(kind) => vec![kind.0],
            DecodeError::UnsupportedMajorVersion(_) => vec![0x20],
            _ => Vec::new(),
        }
    }
}

/// Why a message we built could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A payload body does not fit the 16-bit payload length field.
    #[error("payload {0:?} too long ({1} bytes)")]
    PayloadTooLong(PayloadType, usize),
    /// The SK payload must be the last payload of a message (RFC 7296 3.14).
    #[error("SK payload is not the last payload")]
    SkNotLast,
    /// The message does not fit the 32-bit length field.
    #[error("message too long")]
    MessageTooLong,
}
