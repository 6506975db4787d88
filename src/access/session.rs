//! Browser sessions for `/ui` and the login throttle.
//!
//! A session is a random 256-bit token (64 hex digits) handed to the browser in a cookie; the
//! server keeps only its SHA-256, the SHA-256 of the key that logged in, and an expiry. The key
//! itself is never stored or sent back. A session is usable while it has not expired, was not
//! ended (`POST /ui/logout`, [`Sessions::revoke`]) and the key that made it still opens `/ui`
//! (a revoked or expired key ends its sessions at once). At most [`MAX_SESSIONS`] live at a
//! time: when full, expired ones are dropped first, then the oldest.
//!
//! The throttle counts failed logins per client address (IPv4 address, or IPv6 /64 prefix):
//! after [`LOGIN_FAILURES`] failures within [`LOGIN_WINDOW`] every further login attempt from
//! that address is refused (429, `Retry-After`) until the window that started with the first
//! failure ends — even with the right key. At most [`MAX_THROTTLED_ADDRESSES`] addresses are
//! tracked; when the table is full of live windows, unknown addresses are refused too (fail
//! closed) until entries expire.

use rand::RngCore;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most sessions kept at once.
pub const MAX_SESSIONS: usize = 10_000;
/// Failed logins allowed per address within [`LOGIN_WINDOW`].
pub const LOGIN_FAILURES: u32 = 5;
/// The throttle's window, counted from an address's first failure.
pub const LOGIN_WINDOW: Duration = Duration::from_secs(60);
/// Most client addresses whose failures are tracked at once.
pub const MAX_THROTTLED_ADDRESSES: usize = 10_000;

struct Session {
    key_hash: [u8; 32],
    created: Instant,
    expires: Instant,
}

/// Live `/ui` sessions, by the SHA-256 of their token.
#[derive(Default)]
pub struct Sessions {
    by_token: Mutex<HashMap<[u8; 32], Session>>,
}

impl Sessions {
    /// Starts a session for the key whose SHA-256 is `key_hash`, valid for `ttl` from `now`.
    /// Returns the token (64 lowercase hex digits) to put in the cookie.
    pub fn create(&self, key_hash: [u8; 32], ttl: Duration, now: Instant) -> String {
        let mut raw = [0u8; 32];
        rand::rng().fill_bytes(&mut raw);
        let token = hex::encode(raw);
        let mut map = self.by_token.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, s| s.expires > now);
        }
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map.iter().min_by_key(|(_, s)| s.created).map(|(k, _)| *k)
        {
            map.remove(&oldest);
        }
        map.insert(
            super::auth::hash_key(&token),
            Session {
                key_hash,
                created: now,
                expires: now + ttl,
            },
        );
        token
    }

    /// The SHA-256 of the key behind a live session `token`; `None` when the token is unknown,
    /// ended or expired (an expired session is dropped).
    pub fn key_hash(&self, token: &str, now: Instant) -> Option<[u8; 32]> {
        let id = super::auth::hash_key(token);
        let mut map = self.by_token.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&id) {
            Some(s) if s.expires > now => Some(s.key_hash),
            Some(_) => {
                map.remove(&id);
                None
            }
            None => None,
        }
    }

    /// Ends the session `token` (logout); `true` when it was live.
    pub fn revoke(&self, token: &str) -> bool {
        let id = super::auth::hash_key(token);
        let mut map = self.by_token.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&id).is_some()
    }

    /// Number of sessions held (live or not yet swept).
    pub fn len(&self) -> usize {
        self.by_token.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Failed logins per client address (see the module docs).
#[derive(Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

/// The address a throttle entry is kept under: IPv4 as is, IPv6 by its /64 prefix (one
/// host usually owns a whole /64), IPv4-mapped IPv6 as IPv4.
pub fn throttle_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl LoginThrottle {
    /// Whether `ip` may try to log in at `now`: `Err(seconds)` until its window ends when it
    /// has used up [`LOGIN_FAILURES`] (or the table is full of live entries).
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        let key = throttle_key(ip);
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&key) {
            Some((n, start)) if now.duration_since(*start) < LOGIN_WINDOW => {
                if *n >= LOGIN_FAILURES {
                    return Err(seconds_left(*start, now));
                }
                Ok(())
            }
            Some(_) => {
                map.remove(&key);
                Ok(())
            }
            None if map.len() >= MAX_THROTTLED_ADDRESSES => {
                map.retain(|_, (_, start)| now.duration_since(*start) < LOGIN_WINDOW);
                match map.values().map(|(_, s)| *s).min() {
                    Some(oldest) if map.len() >= MAX_THROTTLED_ADDRESSES => {
                        Err(seconds_left(oldest, now))
                    }
                    _ => Ok(()),
                }
            }
            None => Ok(()),
        }
    }

    /// Counts a failed login from `ip` at `now`.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let key = throttle_key(ip);
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.entry(key).or_insert((0, now));
        if now.duration_since(entry.1) >= LOGIN_WINDOW {
            *entry = (0, now);
        }
        entry.0 = entry.0.saturating_add(1);
    }
}

fn seconds_left(start: Instant, now: Instant) -> u64 {
    let left = LOGIN_WINDOW.saturating_sub(now.duration_since(start));
    left.as_secs() + u64::from(left.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_are_revocable() {
        let s = Sessions::default();
        let now = Instant::now();
        let key = [7u8; 32];
        let t = s.create(key, Duration::from_secs(10), now);
        assert_eq!(t.len(), 64);
        assert!(t.bytes().all(|b| b.is_ascii_hexdigit()));
        let t2 = s.create(key, Duration::from_secs(10), now);
        assert_ne!(t, t2, "tokens are random");
        assert_eq!(s.key_hash(&t, now + Duration::from_secs(9)), Some(key));
        assert_eq!(s.key_hash(&t, now + Duration::from_secs(10)), None);
        assert_eq!(s.key_hash(&t, now), None, "an expired session is gone");
        assert!(s.revoke(&t2));
        assert_eq!(s.key_hash(&t2, now), None);
        assert_eq!(s.key_hash("not-a-token", now), None);
        assert!(s.is_empty());
    }

    #[test]
    fn sessions_are_bounded() {
        let s = Sessions::default();
        let now = Instant::now();
        let first = s.create([1; 32], Duration::from_secs(100), now);
        for i in 1..=MAX_SESSIONS {
            s.create(
                [2; 32],
                Duration::from_secs(100),
                now + Duration::from_nanos(i as u64),
            );
        }
        assert_eq!(s.len(), MAX_SESSIONS);
        assert_eq!(s.key_hash(&first, now), None, "the oldest made room");
    }

    #[test]
    fn five_failures_per_minute_per_address() {
        let th = LoginThrottle::default();
        let now = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for i in 0..LOGIN_FAILURES {
            assert_eq!(th.check(a, now), Ok(()), "attempt {i}");
            th.failed(a, now + Duration::from_secs(u64::from(i)));
        }
        assert_eq!(th.check(a, now + Duration::from_secs(10)), Err(50));
        assert_eq!(th.check(a, now + Duration::from_millis(59_500)), Err(1));
        assert_eq!(
            th.check(b, now + Duration::from_secs(10)),
            Ok(()),
            "per address"
        );
        assert_eq!(th.check(a, now + LOGIN_WINDOW), Ok(()), "the window ended");
        th.failed(a, now + LOGIN_WINDOW);
        assert_eq!(th.check(a, now + LOGIN_WINDOW), Ok(()), "a new window");
    }

    #[test]
    fn ipv6_hosts_share_their_64_prefix() {
        let th = LoginThrottle::default();
        let now = Instant::now();
        for i in 0..LOGIN_FAILURES {
            let ip: IpAddr = format!("2001:db8:1:2::{}", i + 1).parse().unwrap();
            th.failed(ip, now);
        }
        let same: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(th.check(same, now).is_err());
        assert_eq!(th.check(other, now), Ok(()));
        let mapped: IpAddr = "::ffff:10.0.0.9".parse().unwrap();
        assert_eq!(throttle_key(mapped), "10.0.0.9".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn a_full_table_fails_closed_for_new_addresses() {
        let th = LoginThrottle::default();
        let now = Instant::now();
        for i in 0..MAX_THROTTLED_ADDRESSES as u32 {
            th.failed(IpAddr::V4(std::net::Ipv4Addr::from(i + 1)), now);
        }
        let fresh: IpAddr = "203.0.113.7".parse().unwrap();
        assert_eq!(th.check(fresh, now + Duration::from_secs(30)), Err(30));
        assert_eq!(th.check(fresh, now + LOGIN_WINDOW), Ok(()));
    }
}
