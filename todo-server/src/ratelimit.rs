//! Rate limits on the built-in accounts' login and registration, per client address and per
//! account, with the client address taken from the socket or, behind a trusted proxy, from
//! `X-Forwarded-For`.
//!
//! Limits are GCRA (`governor`): `n` attempts per minute, all of them usable at once. A refused
//! attempt is answered 429 with `Retry-After` and the IETF draft's `RateLimit` and
//! `RateLimit-Policy` fields (draft-ietf-httpapi-ratelimit-headers). Keys that have recovered
//! their whole quota are forgotten about once a minute, so the tables hold only the addresses and
//! accounts seen in the last minute; IPv6 addresses count per /64, the block one host is given.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::Clock;
use governor::middleware::StateInformationMiddleware;
use governor::{DefaultKeyedRateLimiter, Quota};
use poem::Request;

/// The window every quota is expressed over.
const WINDOW: Duration = Duration::from_secs(60);

/// How often keys that have recovered their whole quota are dropped.
const FORGET_EVERY: Duration = Duration::from_secs(60);

/// An IP network (`10.0.0.0/8`, `::1/128`); a bare address is a network of one. Parsed and
/// matched by the `ipnet` crate; an IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) is the
/// IPv4 network it maps, since addresses are compared in their IPv4 form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet(ipnet::IpNet);

impl IpNet {
    /// Parses `addr` or `addr/prefix`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let net = match raw.parse::<ipnet::IpNet>() {
            Ok(net) => net,
            Err(_) if raw.contains('/') => {
                return Err(format!(
                    "{raw:?} is not a CIDR network (address/prefix length)"
                ));
            }
            Err(_) => raw
                .parse::<IpAddr>()
                .map(ipnet::IpNet::from)
                .map_err(|_| format!("{raw:?} is not an IP address or CIDR network"))?,
        };
        if let ipnet::IpNet::V6(v6) = net
            && let Some(v4) = v6.addr().to_ipv4_mapped()
            && v6.prefix_len() >= 96
        {
            let v4 = ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map_err(|_| format!("{raw:?} has an invalid prefix length"))?;
            return Ok(Self(ipnet::IpNet::V4(v4)));
        }
        Ok(Self(net))
    }

    /// Whether `ip` is inside the network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&canonical(ip))
    }
}

/// An IPv4-mapped IPv6 address as IPv4; anything else unchanged.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Who is calling: the socket's peer, or the client a trusted proxy names.
#[derive(Debug, Clone, Default)]
pub struct ClientAddress {
    trusted: Vec<IpNet>,
}

impl ClientAddress {
    /// Trusts `X-Forwarded-For` from peers in these networks only.
    pub fn new(trusted: Vec<IpNet>) -> Self {
        Self { trusted }
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|n| n.contains(ip))
    }

    /// The client's address: the socket peer, unless the peer is a trusted proxy; then the
    /// rightmost `X-Forwarded-For` entry that is not itself a trusted proxy (entries to its
    /// left were written by the client and prove nothing). `None` when the request did not
    /// come over TCP (in-process tests).
    pub fn of(&self, req: &Request) -> Option<IpAddr> {
        let peer = canonical(req.remote_addr().as_socket_addr()?.ip());
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        // Each entry is read on its own, right to left: entries are appended by each proxy, so
        // the rightmost ones are the trusted proxies' own, and a client's junk further left
        // (even bytes that are not text) cannot hide the address its proxy appended.
        let mut hops: Vec<&[u8]> = Vec::new();
        for value in req.headers().get_all("x-forwarded-for") {
            hops.extend(value.as_bytes().split(|b| *b == b','));
        }
        for hop in hops.iter().rev() {
            match forwarded_ip(hop) {
                Some(ip) if self.is_trusted(ip) => continue,
                Some(ip) => return Some(ip),
                // The nearest untrusted hop is unreadable: nothing further left can be
                // believed, and the proxy is the last address known.
                None => return Some(peer),
            }
        }
        Some(peer)
    }
}

/// One `X-Forwarded-For` entry as an address: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or
/// `[2001:db8::1]:5678`.
fn forwarded_ip(entry: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(entry).ok()?.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    text.parse::<std::net::SocketAddr>()
        .ok()
        .map(|s| canonical(s.ip()))
}

/// The rate-limit fields of an answer (draft-ietf-httpapi-ratelimit-headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateFields {
    /// `RateLimit-Policy`: every policy that applies, e.g. `"auth-ip";q=20;w=60`.
    pub policy: String,
    /// `RateLimit`: the policy closest to its limit, e.g. `"auth-ip";r=3;t=45`.
    pub limit: String,
}

impl RateFields {
    /// The `RateLimit-Policy` and `RateLimit` header values of an answer, when limits counted it.
    pub fn header_values(fields: Option<Self>) -> (Option<String>, Option<String>) {
        fields.map_or((None, None), |f| (Some(f.policy), Some(f.limit)))
    }
}

/// An attempt over a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttled {
    /// Whole seconds until an attempt would be allowed (at least 1).
    pub retry_after: u64,
    /// The fields to send with the 429.
    pub fields: RateFields,
}

type Limiter<K> = DefaultKeyedRateLimiter<K, StateInformationMiddleware>;

/// One limit on one kind of key.
struct Policy<K: Hash + Eq + Clone> {
    name: &'static str,
    per_minute: u32,
    limiter: Limiter<K>,
}

/// The outcome of one policy: remaining attempts and seconds until the quota is whole again,
/// or seconds until the next attempt is allowed.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    Allowed { remaining: u32, reset: u64 },
    Refused { retry_after: u64 },
}

impl<K: Hash + Eq + Clone> Policy<K> {
    fn new(name: &'static str, per_minute: u32) -> Option<Self> {
        let burst = NonZeroU32::new(per_minute)?;
        Some(Self {
            name,
            per_minute,
            limiter: DefaultKeyedRateLimiter::<K>::keyed(Quota::per_minute(burst))
                .with_middleware::<StateInformationMiddleware>(),
        })
    }

    fn check(&self, key: &K) -> Outcome {
        match self.limiter.check_key(key) {
            Ok(state) => {
                let remaining = state.remaining_burst_capacity();
                let per_attempt = WINDOW.as_secs_f64() / f64::from(self.per_minute);
                let used = self.per_minute.saturating_sub(remaining);
                Outcome::Allowed {
                    remaining,
                    reset: (f64::from(used) * per_attempt).ceil() as u64,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.limiter.clock().now());
                Outcome::Refused {
                    retry_after: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
                }
            }
        }
    }

    fn policy_field(&self) -> String {
        format!(
            "\"{}\";q={};w={}",
            self.name,
            self.per_minute,
            WINDOW.as_secs()
        )
    }

    fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// How many times [`AuthRateLimits`]' per-account limit an account takes from all addresses
/// together: enough that no one address can lock its owner out, few enough to stop guessing
/// spread over many addresses.
pub const ACCOUNT_TOTAL_FACTOR: u32 = 10;

/// Longest account key counted (an email is at most 254 characters); a longer one is not a
/// valid email, cannot sign in, and is counted by address only.
const MAX_ACCOUNT_KEY_BYTES: usize = 320;

/// Attempt limits on login and registration: per client address, per account and address, and
/// per account from all addresses together (`ACCOUNT_TOTAL_FACTOR` times the per-account limit).
pub struct AuthRateLimits {
    per_ip: Option<Policy<IpAddr>>,
    per_account_address: Option<Policy<(String, Option<IpAddr>)>>,
    per_account: Option<Policy<String>>,
    last_forget: Mutex<Instant>,
}

impl std::fmt::Debug for AuthRateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthRateLimits")
            .field("per_ip", &self.per_ip.as_ref().map(|p| p.per_minute))
            .field(
                "per_account",
                &self.per_account_address.as_ref().map(|p| p.per_minute),
            )
            .finish()
    }
}

/// The key an address is counted under: IPv4 as is, IPv6 by its /64.
fn address_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => IpAddr::V6((v6.to_bits() & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

/// An attempt the address limit has let through, to be counted against its account next.
#[derive(Debug)]
pub struct Admitted {
    client: Option<IpAddr>,
    address: Option<Outcome>,
}

impl AuthRateLimits {
    /// `per_ip` and `per_account` attempts per minute; 0 turns that limit off. `None` when both
    /// are off.
    pub fn new(per_ip: u32, per_account: u32) -> Option<Self> {
        let per_ip = Policy::new("auth-ip", per_ip);
        let per_account_address = Policy::new("auth-account", per_account);
        let per_account = Policy::new(
            "auth-account-total",
            per_account.saturating_mul(ACCOUNT_TOTAL_FACTOR),
        );
        (per_ip.is_some() || per_account_address.is_some()).then(|| Self {
            per_ip,
            per_account_address,
            per_account,
            last_forget: Mutex::new(Instant::now()),
        })
    }

    /// Counts one attempt by `client` (if known) against the address limit, before the request
    /// body is read. `Err` means refuse with 429.
    pub fn admit(&self, client: Option<IpAddr>) -> Result<Admitted, Throttled> {
        self.forget_idle_keys();
        let address = match (&self.per_ip, client) {
            (Some(p), Some(ip)) => Some(p.check(&address_key(ip))),
            _ => None,
        };
        if let (Some(p), Some(Outcome::Refused { retry_after })) = (&self.per_ip, address) {
            return Err(self.refusal(p.name, retry_after));
        }
        Ok(Admitted { client, address })
    }

    /// Counts an admitted attempt on `account` (a normalised email). `Ok` carries the fields
    /// for the answer; `Err` means refuse with 429.
    pub fn attempt(&self, admitted: Admitted, account: &str) -> Result<RateFields, Throttled> {
        let mut outcomes: Vec<(&'static str, Outcome)> = Vec::with_capacity(3);
        if let (Some(p), Some(o)) = (&self.per_ip, admitted.address) {
            outcomes.push((p.name, o));
        }
        if account.len() <= MAX_ACCOUNT_KEY_BYTES {
            if let Some(p) = &self.per_account_address {
                let o = p.check(&(account.to_owned(), admitted.client.map(address_key)));
                if let Outcome::Refused { retry_after } = o {
                    return Err(self.refusal(p.name, retry_after));
                }
                outcomes.push((p.name, o));
            }
            if let Some(p) = &self.per_account {
                let o = p.check(&account.to_owned());
                if let Outcome::Refused { retry_after } = o {
                    return Err(self.refusal(p.name, retry_after));
                }
                outcomes.push((p.name, o));
            }
        }
        let tightest = outcomes
            .iter()
            .filter_map(|(name, o)| match o {
                Outcome::Allowed { remaining, reset } => Some((*name, *remaining, *reset)),
                Outcome::Refused { .. } => None,
            })
            .min_by_key(|(_, remaining, _)| *remaining);
        Ok(RateFields {
            policy: self.policy_field(),
            limit: tightest
                .map(|(name, r, t)| format!("\"{name}\";r={r};t={t}"))
                .unwrap_or_default(),
        })
    }

    fn refusal(&self, name: &str, retry_after: u64) -> Throttled {
        let retry_after = retry_after.max(1);
        Throttled {
            retry_after,
            fields: RateFields {
                policy: self.policy_field(),
                limit: format!("\"{name}\";r=0;t={retry_after}"),
            },
        }
    }

    fn policy_field(&self) -> String {
        let mut fields = Vec::with_capacity(3);
        if let Some(p) = &self.per_ip {
            fields.push(p.policy_field());
        }
        if let Some(p) = &self.per_account_address {
            fields.push(p.policy_field());
        }
        if let Some(p) = &self.per_account {
            fields.push(p.policy_field());
        }
        fields.join(", ")
    }

    /// Drops, at most once per [`FORGET_EVERY`], the keys whose quota is whole again.
    fn forget_idle_keys(&self) {
        let Ok(mut last) = self.last_forget.try_lock() else {
            return;
        };
        if last.elapsed() < FORGET_EVERY {
            return;
        }
        *last = Instant::now();
        drop(last);
        if let Some(p) = &self.per_ip {
            p.forget_idle();
        }
        if let Some(p) = &self.per_account_address {
            p.forget_idle();
        }
        if let Some(p) = &self.per_account {
            p.forget_idle();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn networks_contain_their_addresses_only() {
        let net = IpNet::parse("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        let one = IpNet::parse("127.0.0.1").unwrap();
        assert!(one.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let v6 = IpNet::parse("fd00::/8").unwrap();
        assert!(v6.contains("fdab::1".parse().unwrap()));
        assert!(!v6.contains("fe80::1".parse().unwrap()));
        assert!(IpNet::parse("0.0.0.0/0").is_ok_and(|n| n.contains("8.8.8.8".parse().unwrap())));
        // A network written with host bits set is the network they belong to.
        let hosty = IpNet::parse("10.1.2.3/16").unwrap();
        assert!(hosty.contains("10.1.9.9".parse().unwrap()));
        assert!(IpNet::parse("10.0.0.0/33").is_err());
        assert!(IpNet::parse("10.0.0.0/").is_err());
        assert!(IpNet::parse("example.com").is_err());
    }

    #[test]
    fn ipv6_addresses_count_per_64() {
        let a = address_key("2001:db8:1:2::5".parse().unwrap());
        let b = address_key("2001:db8:1:2:ffff::9".parse().unwrap());
        let c = address_key("2001:db8:1:3::5".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn the_attempt_past_the_quota_is_refused_with_its_policy() {
        let limits = AuthRateLimits::new(0, 2).unwrap();
        let me: Option<IpAddr> = Some("10.0.0.1".parse().unwrap());
        let attempt = |who: Option<IpAddr>, account: &str| {
            limits.attempt(limits.admit(who).unwrap(), account)
        };
        let ok = attempt(me, "a@x").unwrap();
        assert_eq!(
            ok.policy,
            "\"auth-account\";q=2;w=60, \"auth-account-total\";q=20;w=60"
        );
        assert_eq!(ok.limit, "\"auth-account\";r=1;t=30");
        assert!(attempt(me, "a@x").is_ok());
        let refused = attempt(me, "a@x").unwrap_err();
        assert!((1..=30).contains(&refused.retry_after));
        assert!(refused.fields.limit.starts_with("\"auth-account\";r=0;t="));
        // The same account from another address, and another account, are not locked out.
        assert!(attempt(Some("10.0.0.2".parse().unwrap()), "a@x").is_ok());
        assert!(attempt(me, "b@x").is_ok());
        assert!(AuthRateLimits::new(0, 0).is_none());
    }

    #[test]
    fn an_account_takes_ten_times_its_limit_from_all_addresses_together() {
        let limits = AuthRateLimits::new(0, 1).unwrap();
        for i in 0..10u8 {
            let who = Some(IpAddr::from([10, 0, 0, i]));
            assert!(
                limits.attempt(limits.admit(who).unwrap(), "a@x").is_ok(),
                "{i}"
            );
        }
        let who = Some(IpAddr::from([10, 0, 0, 99]));
        let refused = limits
            .attempt(limits.admit(who).unwrap(), "a@x")
            .unwrap_err();
        assert!(
            refused
                .fields
                .limit
                .starts_with("\"auth-account-total\";r=0")
        );
    }

    #[test]
    fn the_address_limit_refuses_before_any_account_is_counted() {
        let limits = AuthRateLimits::new(1, 0).unwrap();
        let me = Some("10.0.0.1".parse().unwrap());
        assert!(limits.admit(me).is_ok());
        let refused = limits.admit(me).unwrap_err();
        assert!(refused.fields.limit.starts_with("\"auth-ip\";r=0"));
        assert!(limits.admit(Some("10.0.0.2".parse().unwrap())).is_ok());
    }

    #[test]
    fn forwarded_entries_are_read_one_by_one_with_or_without_ports() {
        assert_eq!(forwarded_ip(b" 1.2.3.4"), Some("1.2.3.4".parse().unwrap()));
        assert_eq!(
            forwarded_ip(b"1.2.3.4:5678"),
            Some("1.2.3.4".parse().unwrap())
        );
        assert_eq!(
            forwarded_ip(b"[2001:db8::1]:443"),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(
            forwarded_ip(b"2001:db8::1"),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(forwarded_ip(b"caf\xe9"), None);
        assert_eq!(forwarded_ip(b"unknown"), None);
        let mapped = IpNet::parse("::ffff:10.0.0.0/104").unwrap();
        assert!(mapped.contains("10.1.2.3".parse().unwrap()));
    }
}
