//! Wire enums as newtypes with named constants (the rustls `enum_builder!` pattern): a value we
//! do not know survives parsing, compares, re-encodes and prints as a number.

macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $name:ident($ty:ty) {
            $( $(#[$cmeta:meta])* $konst:ident = $val:literal ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub $ty);

        impl $name {
            $( $(#[$cmeta])* pub const $konst: Self = Self($val); )*

            /// The RFC name, if this value is one we know.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $val => Some(stringify!($konst)), )*
                    _ => None,
                }
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                match self.name() {
                    Some(n) => f.write_str(n),
                    None => write!(f, "{}({})", stringify!($name), self.0),
                }
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                core::fmt::Debug::fmt(self, f)
            }
        }

        impl From<$ty> for $name {
            fn from(v: $ty) -> Self {
                Self(v)
            }
        }

        impl From<$name> for $ty {
            fn from(v: $name) -> $ty {
                v.0
            }
        }
    };
}

wire_enum! {
    /// Exchange Type (RFC 7296 3.1).
    ExchangeType(u8) {
        IKE_SA_INIT = 34,
        IKE_AUTH = 35,
        CREATE_CHILD_SA = 36,
        INFORMATIONAL = 37,
        IKE_INTERMEDIATE = 43,
    }
}

wire_enum! {
    /// Next Payload / payload type (RFC 7296 3.2).
    PayloadType(u8) {
        NONE = 0,
        SA = 33,
        KE = 34,
        IDI = 35,
        IDR = 36,
        CERT = 37,
        CERTREQ = 38,
        AUTH = 39,
        /// Ni and Nr.
        NONCE = 40,
        NOTIFY = 41,
        DELETE = 42,
        VENDOR = 43,
        TSI = 44,
        TSR = 45,
        SK = 46,
        CP = 47,
        EAP = 48,
        /// Encrypted Fragment (RFC 7383 2.5).
        SKF = 53,
    }
}

wire_enum! {
    /// Transform Type (RFC 7296 3.3.2).
    TransformType(u8) {
        ENCR = 1,
        PRF = 2,
        INTEG = 3,
        DH = 4,
        ESN = 5,
    }
}

wire_enum! {
    /// Transform IDs for Transform Type 1 (RFC 7296 3.3.2, IANA).
    EncrId(u16) {
        ENCR_3DES = 3,
        ENCR_NULL = 11,
        ENCR_AES_CBC = 12,
        ENCR_AES_CTR = 13,
        ENCR_AES_CCM_8 = 14,
        ENCR_AES_CCM_12 = 15,
        ENCR_AES_CCM_16 = 16,
        ENCR_AES_GCM_8 = 18,
        ENCR_AES_GCM_12 = 19,
        ENCR_AES_GCM_16 = 20,
        ENCR_CHACHA20_POLY1305 = 28,
    }
}

wire_enum! {
    /// Transform IDs for Transform Type 2.
    PrfId(u16) {
        PRF_HMAC_MD5 = 1,
        PRF_HMAC_SHA1 = 2,
        PRF_AES128_XCBC = 4,
        PRF_HMAC_SHA2_256 = 5,
        PRF_HMAC_SHA2_384 = 6,
        PRF_HMAC_SHA2_512 = 7,
        PRF_AES128_CMAC = 8,
    }
}

wire_enum! {
    /// Transform IDs for Transform Type 3.
    IntegId(u16) {
        NONE = 0,
        AUTH_HMAC_MD5_96 = 1,
        AUTH_HMAC_SHA1_96 = 2,
        AUTH_AES_XCBC_96 = 5,
        AUTH_HMAC_SHA2_256_128 = 12,
        AUTH_HMAC_SHA2_384_192 = 13,
        AUTH_HMAC_SHA2_512_256 = 14,
    }
}

wire_enum! {
    /// Transform IDs for Transform Type 4 (Diffie-Hellman group numbers).
    DhGroupId(u16) {
        NONE = 0,
        MODP_1024 = 2,
        MODP_2048 = 14,
        MODP_3072 = 15,
        MODP_4096 = 16,
        ECP_256 = 19,
        ECP_384 = 20,
        ECP_521 = 21,
        CURVE25519 = 31,
        CURVE448 = 32,
    }
}

wire_enum! {
    /// Transform IDs for Transform Type 5 (Extended Sequence Numbers).
    EsnId(u16) {
        NO_ESN = 0,
        ESN = 1,
    }
}

wire_enum! {
    /// Protocol ID (RFC 7296 3.3.1, 3.10, 3.11). 0 means "none" in Notify payloads.
    ProtocolId(u8) {
        NONE = 0,
        IKE = 1,
        AH = 2,
        ESP = 3,
    }
}

wire_enum! {
    /// Notify Message Type (RFC 7296 3.10.1 and IANA). Values below 16384 are errors.
    NotifyType(u16) {
        UNSUPPORTED_CRITICAL_PAYLOAD = 1,
        INVALID_IKE_SPI = 4,
        INVALID_MAJOR_VERSION = 5,
        INVALID_SYNTAX = 7,
        INVALID_MESSAGE_ID = 9,
        INVALID_SPI = 11,
        NO_PROPOSAL_CHOSEN = 14,
        INVALID_KE_PAYLOAD = 17,
        AUTHENTICATION_FAILED = 24,
        SINGLE_PAIR_REQUIRED = 34,
        NO_ADDITIONAL_SAS = 35,
        INTERNAL_ADDRESS_FAILURE = 36,
        FAILED_CP_REQUIRED = 37,
        TS_UNACCEPTABLE = 38,
        INVALID_SELECTORS = 39,
        TEMPORARY_FAILURE = 43,
        CHILD_SA_NOT_FOUND = 44,
        INITIAL_CONTACT = 16384,
        SET_WINDOW_SIZE = 16385,
        ADDITIONAL_TS_POSSIBLE = 16386,
        IPCOMP_SUPPORTED = 16387,
        NAT_DETECTION_SOURCE_IP = 16388,
        NAT_DETECTION_DESTINATION_IP = 16389,
        COOKIE = 16390,
        USE_TRANSPORT_MODE = 16391,
        HTTP_CERT_LOOKUP_SUPPORTED = 16392,
        REKEY_SA = 16393,
        ESP_TFC_PADDING_NOT_SUPPORTED = 16394,
        NON_FIRST_FRAGMENTS_ALSO = 16395,
        MOBIKE_SUPPORTED = 16396,
        MULTIPLE_AUTH_SUPPORTED = 16404,
        ANOTHER_AUTH_FOLLOWS = 16405,
        REDIRECT_SUPPORTED = 16406,
        EAP_ONLY_AUTHENTICATION = 16417,
        CHILDLESS_IKEV2_SUPPORTED = 16418,
        IKEV2_FRAGMENTATION_SUPPORTED = 16430,
        SIGNATURE_HASH_ALGORITHMS = 16431,
        USE_PPK = 16435,
        INTERMEDIATE_EXCHANGE_SUPPORTED = 16438,
    }
}

impl NotifyType {
    /// Error types are below 16384 (RFC 7296 3.10.1); an unknown error type in a response still
    /// means the request failed.
    pub fn is_error(self) -> bool {
        self.0 < 16384
    }
}

wire_enum! {
    /// ID Type (RFC 7296 3.5).
    IdType(u8) {
        IPV4_ADDR = 1,
        FQDN = 2,
        RFC822_ADDR = 3,
        IPV6_ADDR = 5,
        DER_ASN1_DN = 9,
        DER_ASN1_GN = 10,
        KEY_ID = 11,
    }
}

wire_enum! {
    /// Auth Method (RFC 7296 3.8, RFC 7427).
    AuthMethod(u8) {
        RSA_DIGITAL_SIGNATURE = 1,
        SHARED_KEY_MIC = 2,
        DSS_DIGITAL_SIGNATURE = 3,
        ECDSA_SHA256_P256 = 9,
        ECDSA_SHA384_P384 = 10,
        ECDSA_SHA512_P521 = 11,
        NULL_AUTH = 13,
        DIGITAL_SIGNATURE = 14,
    }
}

wire_enum! {
    /// TS Type (RFC 7296 3.13.1).
    TsType(u8) {
        IPV4_ADDR_RANGE = 7,
        IPV6_ADDR_RANGE = 8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_values_print_as_numbers() {
        assert_eq!(format!("{:?}", NotifyType::COOKIE), "COOKIE");
        assert_eq!(format!("{:?}", NotifyType(40000)), "NotifyType(40000)");
        assert_eq!(PayloadType::from(41), PayloadType::NOTIFY);
        assert!(NotifyType::INVALID_SYNTAX.is_error());
        assert!(!NotifyType::COOKIE.is_error());
    }
}
