//! EAP in IKE_AUTH, responder side (RFC 7296 2.16): the gateway authenticates itself with
//! its own AUTH and the client through EAP, which the daemon relays to RADIUS; the engine
//! knows no EAP method (RFC 3579's pass-through), only the EAP header.
//!
//! ```text
//! HDR, SK {IDi, [IDr,] SAi2, TSi, TSr}  -->
//!                                        <--  HDR, SK {IDr, AUTH, EAP(Request/Identity)}
//! HDR, SK {EAP(Response/Identity)}      -->   Output::EapRequest ... daemon: Access-Request
//!                                        <--  HDR, SK {EAP(Request)}   (Access-Challenge)
//!   ... as many rounds as the method needs ...
//!                                        <--  HDR, SK {EAP(Success)}   (Access-Accept, MSK)
//! HDR, SK {AUTH(MSK)}                   -->
//!                                        <--  HDR, SK {AUTH(MSK), SAr2, TSi, TSr}
//! ```
//!
//! The EAP identity comes from IDi by default (strongSwan's own default, and its
//! eap-radius's without `eap_start`): vpnd sends RADIUS an EAP-Response/Identity made of
//! IDi, and the first IKE_AUTH response waits for the server's first request. That works with
//! clients that have no EAP Identity method (Debian's strongSwan without the eap-identity
//! plugin NAKs an Identity request, lab 72). `eap_identity: request` sends an
//! EAP-Request/Identity of our own instead (RFC 3748 5.1), for clients whose IDi is not the
//! user (Windows puts its address there); it costs one round trip and no RADIUS request.
//!
//! [`EapResponder`] owns the conversation's pending state: the first request's IDi (the
//! final AUTH signs it) and its child SA payloads (answered only at the end), which IKE
//! message waits for RADIUS, and after the Accept the MSK and the user. It lives in the
//! half-open state ([`State::InitAnswered`]): until the final AUTH verifies, the client is
//! as unauthenticated as one that sent only IKE_SA_INIT, and the DoS bounds count it so.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use zeroize::Zeroizing;

use crate::ike::auth::{psk_auth, verify_psk_auth};
use crate::ike::codec::Identity;
use crate::ike::codec::{
    AuthMethod, AuthPayload, Codec, ExchangeType, IdPayload, NotifyPayload, Payload, PayloadList,
};
use crate::ike::endpoint::{Ctx, Output};
use crate::ike::policy::EapIdentity;
use crate::ike::refusal::Refusal;
use crate::ike::sa::{DownReason, IkeSa, Role, State};

/// EAP codes (RFC 3748 4).
const EAP_REQUEST: u8 = 1;
const EAP_RESPONSE: u8 = 2;
const EAP_SUCCESS: u8 = 3;
const EAP_FAILURE: u8 = 4;
/// EAP type Identity (RFC 3748 5.1).
const EAP_IDENTITY: u8 = 1;

/// How long each step of the conversation may take (the client's answer, or RADIUS's): longer
/// than the IKE_AUTH half-open timeout, as a user may be typing a password, and longer than
/// the RADIUS client's retransmissions, so its own refusal comes first.
pub(crate) const EAP_STEP_TIMEOUT: Duration = Duration::from_secs(90);

/// The user an EAP conversation authenticated, with what the RADIUS server said of them: it
/// travels to the daemon with `IkeUp`, where the session table is its one owner.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AuthenticatedUser {
    /// The EAP identity (or the User-Name the server set): accounting's User-Name.
    pub identity: String,
    /// Class attributes of the Access-Accept, echoed in accounting (RFC 2865 5.25).
    pub class: Vec<Vec<u8>>,
    /// Framed-IP-Address, if the server assigned one.
    pub framed_ip: Option<IpAddr>,
    /// Framed-Pool (RFC 2869 5.23) and Framed-IPv6-Pool (RFC 3162 2.4): the pools to
    /// lease the client's addresses from (a pool's family says which address it gives).
    pub framed_pools: Vec<String>,
    /// Session-Timeout, seconds (RFC 2865 5.27): the engine ends the session then.
    pub session_timeout: Option<u32>,
    /// The RADIUS server that accepted.
    pub server: String,
}

/// One EAP message of the client's for the daemon to relay (an Access-Request), answered with
/// [`Endpoint::eap_answer`](crate::ike::Endpoint::eap_answer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EapRelay {
    pub ike: crate::ike::IkeSaId,
    pub peer: String,
    /// The EAP identity the client gave (RADIUS User-Name).
    pub identity: String,
    /// The EAP packet, whole.
    pub eap: Vec<u8>,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// The first message of the conversation (no RADIUS State yet).
    pub first: bool,
}

/// What RADIUS answered, for the engine.
#[derive(Clone, PartialEq, Eq)]
pub enum EapAnswer {
    /// Access-Challenge: the next EAP request for the client.
    Request(Vec<u8>),
    /// Access-Accept: the EAP-Success for the client (empty: the engine makes one), the
    /// MSK if the method made one, and the user.
    Success {
        eap: Vec<u8>,
        msk: Option<Zeroizing<Vec<u8>>>,
        user: AuthenticatedUser,
    },
    /// Access-Reject, or no server answered: the client is refused with
    /// AUTHENTICATION_FAILED (and the server's EAP-Failure, or one we make).
    Failure { eap: Vec<u8>, why: String },
}

impl std::fmt::Debug for EapAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EapAnswer::Request(e) => write!(f, "Request({} octets)", e.len()),
            EapAnswer::Success { user, msk, .. } => write!(
                f,
                "Success({:?}, msk {:?} octets)",
                user.identity,
                msk.as_ref().map(|m| m.len())
            ),
            EapAnswer::Failure { why, .. } => write!(f, "Failure({why})"),
        }
    }
}

/// The responder's EAP conversation.
pub(crate) struct EapResponder {
    /// The initiator's IDi as received: its final AUTH signs it (2.15, 2.16).
    idi: IdPayload,
    /// The first IKE_AUTH request's child SA payloads (SA, TS, notifies), answered in the
    /// last response.
    first: Vec<Payload>,
    /// Identifier of the EAP request the client must answer next.
    eap_id: u8,
    identity: Option<String>,
    step: Step,
}

enum Step {
    /// Our EAP request went out; the client's response comes with the next IKE_AUTH.
    Client,
    /// The client's EAP response is with RADIUS; the IKE_AUTH request `message_id` waits.
    /// `first`: the first IKE_AUTH's IDr and AUTH, which its response carries before the
    /// server's EAP request (IDi as the identity: nothing has been answered yet).
    Server {
        message_id: u32,
        first: Vec<Payload>,
    },
    /// EAP-Success sent: the client's AUTH computed with the MSK comes next.
    Auth {
        msk: Option<Zeroizing<Vec<u8>>>,
        user: AuthenticatedUser,
    },
}

/// An EAP packet's code, identifier and type (if any), after checking its Length.
fn eap_header(bytes: &[u8]) -> Option<(u8, u8, Option<u8>)> {
    if bytes.len() < 4 {
        return None;
    }
    let len = u16::from_be_bytes([bytes[2], bytes[3]]) as usize;
    if len != bytes.len() {
        return None;
    }
    Some((bytes[0], bytes[1], bytes.get(4).copied()))
}

fn eap_payload(inner: &[Payload]) -> Option<&[u8]> {
    inner.iter().find_map(|p| match p {
        Payload::Eap(b) => Some(b.as_slice()),
        _ => None,
    })
}

/// IDi as an EAP identity (RADIUS User-Name): the name as the client wrote it.
fn identity_name(id: &Identity) -> String {
    match id {
        Identity::Ipv4(a) => a.to_string(),
        Identity::Ipv6(a) => a.to_string(),
        Identity::Fqdn(s) | Identity::UserFqdn(s) => s.clone(),
        Identity::KeyId(k) | Identity::Other { data: k, .. } => {
            String::from_utf8_lossy(k).into_owned()
        }
    }
}

impl IkeSa {
    fn eap_task(&mut self) -> Option<&mut EapResponder> {
        match &mut self.state {
            State::InitAnswered { eap, .. } => eap.as_deref_mut(),
            _ => None,
        }
    }

    fn eap_take(&mut self) -> Option<Box<EapResponder>> {
        match &mut self.state {
            State::InitAnswered { eap, .. } => eap.take(),
            _ => None,
        }
    }

    fn eap_put(&mut self, ctx: &Ctx<'_>, task: Box<EapResponder>) {
        self.state = State::InitAnswered {
            until: ctx.now + EAP_STEP_TIMEOUT,
            eap: Some(task),
        };
    }

    /// Whether this IKE_AUTH request belongs to EAP: the peer is configured for it, or a
    /// conversation is under way.
    pub(crate) fn eap_applies(&self) -> bool {
        matches!(self.peer.remote_auth, crate::ike::auth::RemoteAuth::Eap(_))
            || matches!(self.state, State::InitAnswered { eap: Some(_), .. })
    }

    /// Refuses the client: AUTHENTICATION_FAILED (with an EAP-Failure when the conversation
    /// got that far) and the SA goes.
    fn eap_refuse(&mut self, ctx: &mut Ctx<'_>, message_id: u32, eap: Option<Vec<u8>>, r: Refusal) {
        // AUTHENTICATION_FAILED, or INVALID_SYNTAX for a malformed EAP message.
        let mut reply = vec![Payload::Notify(NotifyPayload::new(
            r.notify(),
            r.notify_data(),
        ))];
        if let Some(e) = eap {
            reply.push(Payload::Eap(e));
        }
        self.respond_encrypted(ctx, ExchangeType::IKE_AUTH, message_id, &reply);
        self.die(ctx, DownReason::NegotiationFailed(r.into()));
    }

    /// Responder: an IKE_AUTH request of an EAP client.
    pub(crate) fn answer_ike_auth_eap(
        &mut self,
        ctx: &mut Ctx<'_>,
        message_id: u32,
        inner: Vec<Payload>,
    ) {
        let Some(mut task) = self.eap_take() else {
            self.eap_start(ctx, message_id, inner);
            return;
        };
        match std::mem::replace(&mut task.step, Step::Client) {
            Step::Server {
                message_id: waiting,
                first,
            } => {
                // The client retransmits while RADIUS thinks: the answer comes with
                // `eap_answer` (the window holds no other request, 2.3).
                task.step = Step::Server {
                    message_id: waiting,
                    first,
                };
                self.state = State::InitAnswered {
                    until: match self.state {
                        State::InitAnswered { until, .. } => until,
                        _ => ctx.now,
                    },
                    eap: Some(task),
                };
            }
            Step::Client => {
                let Some(eap) = eap_payload(&inner) else {
                    return self.eap_refuse(
                        ctx,
                        message_id,
                        None,
                        Refusal::AuthFailed("EAP: IKE_AUTH without the EAP response".into()),
                    );
                };
                let Some((code, id, kind)) = eap_header(eap) else {
                    return self.eap_refuse(
                        ctx,
                        message_id,
                        None,
                        Refusal::InvalidSyntax("EAP: malformed EAP message".into()),
                    );
                };
                if code != EAP_RESPONSE || id != task.eap_id {
                    return self.eap_refuse(
                        ctx,
                        message_id,
                        None,
                        Refusal::AuthFailed(
                            format!(
                            "EAP: expected a response with identifier {}, got code {code} id {id}",
                            task.eap_id
                        )
                            .into(),
                        ),
                    );
                }
                let first = task.identity.is_none();
                if first {
                    if kind != Some(EAP_IDENTITY) {
                        return self.eap_refuse(
                            ctx,
                            message_id,
                            None,
                            Refusal::AuthFailed("EAP: the client did not give its identity".into()),
                        );
                    }
                    let name = String::from_utf8_lossy(&eap[5..]).into_owned();
                    if name.is_empty() {
                        return self.eap_refuse(
                            ctx,
                            message_id,
                            None,
                            Refusal::AuthFailed("EAP: empty identity".into()),
                        );
                    }
                    task.identity = Some(name);
                }
                let identity = task.identity.clone().unwrap_or_default();
                ctx.out.push_back(Output::EapRequest(EapRelay {
                    ike: self.id,
                    peer: self.peer.name.clone(),
                    identity,
                    eap: eap.to_vec(),
                    local: self.local,
                    remote: self.remote,
                    first,
                }));
                task.step = Step::Server {
                    message_id,
                    first: Vec::new(),
                };
                self.eap_put(ctx, task);
            }
            Step::Auth { msk, user } => self.eap_finish(ctx, message_id, inner, *task, msk, user),
        }
    }

    /// The first IKE_AUTH request: IDi, no AUTH (2.16). We answer IDr, our AUTH and an
    /// EAP-Request/Identity.
    fn eap_start(&mut self, ctx: &mut Ctx<'_>, message_id: u32, mut inner: Vec<Payload>) {
        let refuse = |sa: &mut IkeSa, ctx: &mut Ctx<'_>, why: &str| {
            sa.eap_refuse(ctx, message_id, None, Refusal::AuthFailed(why.into()))
        };
        let Some(idi) = inner.id_i().cloned() else {
            return refuse(self, ctx, "IKE_AUTH without IDi");
        };
        if inner.auth().is_some() {
            // The peer is configured for EAP: a client proving itself otherwise is refused,
            // not quietly let in with the PSK.
            return refuse(
                self,
                ctx,
                &format!(
                    "{:?} sent AUTH, but this peer authenticates clients with EAP",
                    idi.identity
                ),
            );
        }
        if let Some(want) = &self.peer.remote_id {
            if *want != idi.identity {
                return refuse(
                    self,
                    ctx,
                    &format!(
                        "peer identity {:?} is not the configured {:?}",
                        idi.identity, want
                    ),
                );
            }
        }
        // Our IDr, [CERT,] AUTH: we prove ourselves first (2.16), with the PSK or our
        // certificate.
        let (idr, certs, auth) = match self.own_auth() {
            Ok(x) => x,
            Err(why) => return refuse(self, ctx, &why),
        };
        let mut ours = vec![Payload::IdR(idr)];
        ours.extend(certs);
        ours.push(Payload::Auth(auth));
        inner.retain(|p| !matches!(p, Payload::IdI(_) | Payload::IdR(_) | Payload::Eap(_)));
        let mode = match self.peer.remote_auth {
            crate::ike::auth::RemoteAuth::Eap(m) => m,
            _ => EapIdentity::Request,
        };
        let eap_id = 1;
        let mut task = Box::new(EapResponder {
            idi,
            first: inner,
            eap_id,
            identity: None,
            step: Step::Client,
        });
        match mode {
            EapIdentity::Request => {
                let request = vec![EAP_REQUEST, eap_id, 0, 5, EAP_IDENTITY];
                let mut reply = ours;
                reply.push(Payload::Eap(request));
                self.respond_encrypted(ctx, ExchangeType::IKE_AUTH, message_id, &reply);
            }
            EapIdentity::IkeId => {
                let name = identity_name(&task.idi.identity);
                if name.is_empty() || name.len() > 250 {
                    return refuse(self, ctx, "IDi is no usable EAP identity");
                }
                // The EAP-Response/Identity the client would have sent (RFC 3748 5.1).
                let mut eap = vec![EAP_RESPONSE, 0, 0, 0, EAP_IDENTITY];
                eap.extend_from_slice(name.as_bytes());
                let len = eap.len() as u16;
                eap[2..4].copy_from_slice(&len.to_be_bytes());
                ctx.out.push_back(Output::EapRequest(EapRelay {
                    ike: self.id,
                    peer: self.peer.name.clone(),
                    identity: name.clone(),
                    eap,
                    local: self.local,
                    remote: self.remote,
                    first: true,
                }));
                task.identity = Some(name);
                task.step = Step::Server {
                    message_id,
                    first: ours,
                };
            }
        }
        self.eap_put(ctx, task);
    }

    /// What the daemon's RADIUS relay answered for this SA's pending EAP message.
    pub(crate) fn eap_answered(&mut self, ctx: &mut Ctx<'_>, answer: EapAnswer) {
        let Some(task) = self.eap_task() else { return };
        let Step::Server { message_id, first } = &mut task.step else {
            return; // nothing waits for an answer (a late or repeated one)
        };
        let message_id = *message_id;
        // The first response's IDr and AUTH go before the server's first EAP message.
        let mut reply = std::mem::take(first);
        let last_id = task.eap_id;
        // Peer-supplied: escaped before it reaches a log line.
        let who = crate::escape::peer_text(task.identity.as_deref().unwrap_or_default());
        match answer {
            EapAnswer::Request(eap) => {
                let Some((EAP_REQUEST, id, _)) = eap_header(&eap) else {
                    let fail = vec![EAP_FAILURE, last_id, 0, 4];
                    return self.eap_refuse(
                        ctx,
                        message_id,
                        Some(fail),
                        Refusal::AuthFailed("EAP: the RADIUS server sent no EAP request".into()),
                    );
                };
                let mut task = self.eap_take().expect("checked above");
                task.eap_id = id;
                task.step = Step::Client;
                reply.push(Payload::Eap(eap));
                self.respond_encrypted(ctx, ExchangeType::IKE_AUTH, message_id, &reply);
                self.eap_put(ctx, task);
            }
            EapAnswer::Success { eap, msk, user } => {
                let eap = match eap_header(&eap) {
                    Some((EAP_SUCCESS, _, _)) => eap,
                    _ => vec![EAP_SUCCESS, last_id, 0, 4],
                };
                let mut task = self.eap_take().expect("checked above");
                task.step = Step::Auth { msk, user };
                reply.push(Payload::Eap(eap));
                self.respond_encrypted(ctx, ExchangeType::IKE_AUTH, message_id, &reply);
                self.eap_put(ctx, task);
            }
            EapAnswer::Failure { eap, why } => {
                let eap = match eap_header(&eap) {
                    Some((EAP_FAILURE, _, _)) => eap,
                    _ => vec![EAP_FAILURE, last_id, 0, 4],
                };
                self.eap_refuse(
                    ctx,
                    message_id,
                    Some(eap),
                    Refusal::AuthFailed(format!("EAP user '{who}': {why}").into()),
                );
            }
        }
    }

    /// The AUTH key of the last two messages (2.16): the MSK, or without one SK_pi / SK_pr.
    fn eap_key(&self, msk: Option<&Zeroizing<Vec<u8>>>, initiator: bool) -> Option<Vec<u8>> {
        let keys = &self.keys.as_ref()?.keys;
        Some(match msk {
            Some(m) => m.to_vec(),
            None if initiator => keys.sk_pi.to_vec(),
            None => keys.sk_pr.to_vec(),
        })
    }

    /// The client's AUTH with the MSK; ours with the MSK, and the child SA.
    fn eap_finish(
        &mut self,
        ctx: &mut Ctx<'_>,
        message_id: u32,
        inner: Vec<Payload>,
        task: EapResponder,
        msk: Option<Zeroizing<Vec<u8>>>,
        user: AuthenticatedUser,
    ) {
        debug_assert_eq!(self.role, Role::Responder);
        let who = crate::escape::peer_text(&user.identity);
        let (Some(auth), Some(k)) = (inner.auth(), self.keys.as_ref()) else {
            return self.eap_refuse(
                ctx,
                message_id,
                None,
                Refusal::AuthFailed(format!("EAP user '{who}': no AUTH after EAP-Success").into()),
            );
        };
        let prf = k.algs.prf;
        let (Some(key_i), Some(key_r)) = (
            self.eap_key(msk.as_ref(), true),
            self.eap_key(msk.as_ref(), false),
        ) else {
            return;
        };
        let key_i = Zeroizing::new(key_i);
        let key_r = Zeroizing::new(key_r);
        let sk_pi = k.keys.sk_pi.to_vec();
        let ok = auth.method == AuthMethod::SHARED_KEY_MIC
            && verify_psk_auth(
                prf,
                &key_i,
                &self.init_request,
                &self.nr,
                &sk_pi,
                &task.idi.get_encoding(),
                &auth.data,
            )
            .is_ok();
        if !ok {
            return self.eap_refuse(
                ctx,
                message_id,
                None,
                Refusal::AuthFailed(
                    format!("EAP user '{who}': AUTH does not verify with the MSK").into(),
                ),
            );
        }
        let idr = IdPayload::new(self.peer.local_id.clone());
        let sk_pr = self
            .keys
            .as_ref()
            .map(|k| k.keys.sk_pr.to_vec())
            .unwrap_or_default();
        let data = psk_auth(
            prf,
            &key_r,
            &self.init_response,
            &self.ni,
            &sk_pr,
            &idr.get_encoding(),
        )
        .to_vec();
        let reply = vec![Payload::Auth(AuthPayload {
            method: AuthMethod::SHARED_KEY_MIC,
            data,
        })];
        // The child SA's payloads: in the first request (2.16); a client that left them out
        // there may send them with its last AUTH, the request the child answer goes in.
        let mut child = task.first;
        if child.sa().is_none() {
            child.extend(inner.into_iter().filter(|p| !matches!(p, Payload::Auth(_))));
        }
        // An address RADIUS assigned (Framed-IP-Address), or a pool it named (Framed-Pool),
        // instead of the profile's pool of that family (config.rs).
        use crate::ike::pool::AddressRequest;
        self.address_requests = user
            .framed_ip
            .map(AddressRequest::Fixed)
            .into_iter()
            .chain(user.framed_pools.iter().cloned().map(AddressRequest::Pool))
            .collect();
        self.establish_responder(
            ctx,
            message_id,
            task.idi.identity,
            &child,
            reply,
            Some(user),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eap_header_checks_length() {
        assert_eq!(eap_header(&[2, 7, 0, 5, 1]), Some((2, 7, Some(1))));
        assert_eq!(eap_header(&[3, 7, 0, 4]), Some((3, 7, None)));
        assert_eq!(eap_header(&[2, 7, 0, 6, 1]), None, "Length past the data");
        assert_eq!(eap_header(&[2, 7, 0]), None);
        assert_eq!(eap_header(&[]), None);
    }
}
