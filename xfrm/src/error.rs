//! Errors that name what was attempted and on which SA or policy.

use std::fmt;
use std::io;

use thiserror::Error;

/// The operation that failed, as `ip xfrm` would name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    AddSa,
    UpdateSa,
    DeleteSa,
    GetSa,
    DumpSa,
    AllocSpi,
    AddPolicy,
    UpdatePolicy,
    DeletePolicy,
    DumpPolicy,
    Subscribe,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::AddSa => "add SA",
            Op::UpdateSa => "update SA",
            Op::DeleteSa => "delete SA",
            Op::GetSa => "get SA",
            Op::DumpSa => "dump SAs",
            Op::AllocSpi => "allocate SPI",
            Op::AddPolicy => "add policy",
            Op::UpdatePolicy => "update policy",
            Op::DeletePolicy => "delete policy",
            Op::DumpPolicy => "dump policies",
            Op::Subscribe => "subscribe to XFRM events",
        })
    }
}

/// The errno the kernel answered with, plus its extended-ACK text when it gave one
/// (e.g. "Requested type not found" when ESP is not in the kernel).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelError {
    pub errno: i32,
    pub message: Option<String>,
}

impl KernelError {
    pub fn kind(&self) -> io::ErrorKind {
        io::Error::from_raw_os_error(self.errno).kind()
    }
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let os = io::Error::from_raw_os_error(self.errno);
        // io::Error's Display adds " (os error N)"; keep the text and name the errno.
        let text = os.to_string();
        let text = text.split(" (os error").next().unwrap_or(&text);
        write!(f, "{} ({})", text, errno_name(self.errno))?;
        if let Some(m) = &self.message {
            write!(f, ": kernel says \"{m}\"")?;
        }
        Ok(())
    }
}

fn errno_name(errno: i32) -> String {
    let name = match errno {
        1 => "EPERM",
        2 => "ENOENT",
        3 => "ESRCH",
        12 => "ENOMEM",
        16 => "EBUSY",
        17 => "EEXIST",
        19 => "ENODEV",
        22 => "EINVAL",
        38 => "ENOSYS",
        65 => "ENOPKG",
        93 => "EPROTONOSUPPORT",
        95 => "EOPNOTSUPP",
        97 => "EAFNOSUPPORT",
        _ => return format!("errno {errno}"),
    };
    name.to_string()
}

#[derive(Debug, Error)]
pub enum Error {
    /// The kernel refused a request.
    #[error("{op} {target}: {kernel}")]
    Kernel {
        op: Op,
        target: String,
        kernel: KernelError,
    },

    /// The request was not sent: a field was wrong.
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },

    /// The netlink socket could not be opened or the connection task is gone.
    #[error("{op}: netlink connection: {source}")]
    Connection { op: Op, source: io::Error },

    /// The kernel answered with something this crate did not expect.
    #[error("{op} {target}: unexpected kernel reply: {detail}")]
    Unexpected {
        op: Op,
        target: String,
        detail: String,
    },
}

impl Error {
    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Error {
        Error::Invalid {
            what,
            reason: reason.into(),
        }
    }

    /// The kernel's errno, when the kernel refused the request.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Kernel { kernel, .. } => Some(kernel.errno),
            _ => None,
        }
    }

    /// True when the kernel said the SA or policy does not exist (ESRCH or ENOENT).
    pub fn is_not_found(&self) -> bool {
        matches!(self.errno(), Some(3) | Some(2))
    }
}

/// Reads an NLMSG_ERROR payload after its 4-byte code: the echoed request (only its
/// 16-byte header when the socket has NETLINK_CAP_ACK) followed by extended-ACK TLVs
/// (`NLMSGERR_ATTR_MSG` = 1 is the human-readable text). Written here because
/// netlink-packet-core keeps this part as raw bytes. Every length is checked.
pub(crate) fn extack_message(after_code: &[u8]) -> Option<String> {
    let echoed_len = u32::from_ne_bytes(after_code.get(0..4)?.try_into().ok()?) as usize;
    // With NETLINK_CAP_ACK the kernel echoes only the header, whatever nlmsg_len says.
    let skip = if after_code.len() >= 16 && echoed_len > after_code.len() {
        16
    } else {
        align4(echoed_len.max(16))
    };
    let mut tlvs = after_code.get(skip..)?;
    while tlvs.len() >= 4 {
        let len = u16::from_ne_bytes([tlvs[0], tlvs[1]]) as usize;
        let kind = u16::from_ne_bytes([tlvs[2], tlvs[3]]) & 0x3fff;
        if len < 4 || len > tlvs.len() {
            return None;
        }
        if kind == 1 {
            let text = &tlvs[4..len];
            let text = text.split(|&b| b == 0).next().unwrap_or(text);
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        tlvs = tlvs.get(align4(len)..).unwrap_or(&[]);
    }
    None
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tlv(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(value);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    #[test]
    fn extack_text_after_capped_header() {
        // A capped echo: nlmsg_len says 300 bytes, only the 16-byte header follows.
        let mut p = Vec::new();
        p.extend_from_slice(&300u32.to_ne_bytes());
        p.extend_from_slice(&[0u8; 12]);
        p.extend(tlv(4, &7u32.to_ne_bytes())); // NLMSGERR_ATTR_OFFS first
        p.extend(tlv(1, b"Requested type not found\0"));
        assert_eq!(
            extack_message(&p).as_deref(),
            Some("Requested type not found")
        );
    }

    #[test]
    fn extack_tolerates_truncated_and_garbage_input() {
        assert_eq!(extack_message(&[]), None);
        assert_eq!(extack_message(&[1, 2, 3]), None);
        let mut p = vec![16, 0, 0, 0];
        p.extend_from_slice(&[0u8; 12]);
        p.extend_from_slice(&[200, 0, 1, 0, b'x']); // TLV claims 200 bytes
        assert_eq!(extack_message(&p), None);
        let mut q = vec![16, 0, 0, 0];
        q.extend_from_slice(&[0u8; 12]);
        q.extend_from_slice(&[2, 0, 1, 0]); // length below the TLV header
        assert_eq!(extack_message(&q), None);
    }

    #[test]
    fn kernel_error_names_errno_and_message() {
        let e = Error::Kernel {
            op: Op::AddSa,
            target: "esp SA 192.0.2.1->192.0.2.2 spi 0x00001000".into(),
            kernel: KernelError {
                errno: 93,
                message: Some("Requested type not found".into()),
            },
        };
        let s = e.to_string();
        assert!(
            s.starts_with("add SA esp SA 192.0.2.1->192.0.2.2 spi 0x00001000: "),
            "{s}"
        );
        assert!(s.contains("EPROTONOSUPPORT"), "{s}");
        assert!(
            s.ends_with("kernel says \"Requested type not found\""),
            "{s}"
        );
    }
}
