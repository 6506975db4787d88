//! Who is calling: the caller's key from the request headers, checked together with every key
//! up its `created_by` chain ([`Access::authenticate`]), and the chain as spend follows it
//! ([`creators_of`]).

use super::{Access, MAX_CREATOR_DEPTH, auth, now_unix};
use crate::api::ApiError;
use auth::{ConfigKeys, Principal};
use std::collections::HashMap;

impl Access {
    /// Identifies the caller from `Authorization: Bearer` / `x-api-key`.
    ///
    /// With a master key set: the master key → admin principal; a known, usable virtual key →
    /// its principal; else 401 `invalid_api_key` (missing, malformed, unknown, revoked,
    /// expired). Without a master key, everyone is let in; a known key is still identified
    /// (for usage per key and its bound policies).
    pub fn authenticate(&self, headers: &axum::http::HeaderMap) -> Result<Principal, ApiError> {
        let presented = auth::presented_key(headers);
        let Some(master) = &self.master_hash else {
            return Ok(match presented {
                Ok(Some(k)) => self
                    .virtual_key(&auth::hash_key(&k))
                    .and_then(|mut p| {
                        let now = now_unix();
                        auth::check_usable(&p.spec, now).ok()?;
                        (p.creators, p.creator_limits) = self.check_creators(&p.spec, now).ok()?;
                        p.admin = true;
                        Some(p)
                    })
                    .unwrap_or_else(Principal::anonymous),
                _ => Principal::anonymous(),
            });
        };
        let key = match presented {
            Ok(Some(k)) => k,
            Ok(None) => {
                return Err(auth::unauthorized(
                    "You didn't provide an API key. Send it as `Authorization: Bearer <key>` or `x-api-key: <key>`.",
                ));
            }
            Err(auth::MalformedAuth) => {
                return Err(auth::unauthorized(
                    "Malformed Authorization header: expected `Bearer <key>`.",
                ));
            }
        };
        self.authenticate_hash(master, &auth::hash_key(&key))
    }

    /// Whether a master key is set (then every route needs a key).
    pub fn has_master_key(&self) -> bool {
        self.master_hash.is_some()
    }

    /// The principal of the key whose SHA-256 is `hash`, checked now (a `/ui` session keeps
    /// only the hash: a key revoked or expired since the login stops its sessions).
    ///
    /// Errors: 401 when no master key is set, or the key is unknown, revoked or expired.
    pub fn authenticate_key_hash(&self, hash: &[u8; 32]) -> Result<Principal, ApiError> {
        match &self.master_hash {
            Some(master) => self.authenticate_hash(master, hash),
            None => Err(auth::unauthorized("Incorrect API key provided.")),
        }
    }

    fn authenticate_hash(&self, master: &[u8; 32], hash: &[u8; 32]) -> Result<Principal, ApiError> {
        let hash = *hash;
        if auth::hashes_equal(master, &hash) {
            return Ok(Principal {
                key_id: Some("master".into()),
                spec: Box::new(auth::KeySpec {
                    name: "master".into(),
                    ..Default::default()
                }),
                admin: true,
                local_only: None,
                creators: Vec::new(),
                creator_limits: Vec::new(),
            });
        }
        let mut p = self
            .virtual_key(&hash)
            .ok_or_else(|| auth::unauthorized("Incorrect API key provided."))?;
        let now = now_unix();
        auth::check_usable(&p.spec, now)?;
        (p.creators, p.creator_limits) = self.check_creators(&p.spec, now)?;
        Ok(p)
    }

    /// A key made through the admin API is usable only while every key up its `created_by`
    /// chain is: one revoked, expired or gone (a config key removed) ends the keys it made,
    /// and theirs. The master key (`master`) and keys made without one (no `created_by`) end
    /// the chain; a chain longer than [`MAX_CREATOR_DEPTH`] (or a loop) is refused.
    ///
    /// Returns the chain's ids, the key's maker first ([`auth::Principal::creators`]), and the
    /// limits of those that have any ([`auth::Principal::creator_limits`]).
    ///
    /// Errors: 401 `invalid_api_key` naming why.
    fn check_creators(
        &self,
        spec: &auth::KeySpec,
        now: i64,
    ) -> Result<(Vec<String>, Vec<auth::CreatorLimits>), ApiError> {
        let (mut chain, mut limits) = (Vec::new(), Vec::new());
        let mut creator = spec.created_by.clone();
        for _ in 0..MAX_CREATOR_DEPTH {
            let id = match creator {
                None => return Ok((chain, limits)),
                Some(id) if id == "master" => return Ok((chain, limits)),
                Some(id) => id,
            };
            let read = |s: &auth::KeySpec| {
                let usable = auth::check_usable(s, now).is_ok();
                (
                    usable,
                    s.created_by.clone(),
                    auth::CreatorLimits::of(&id, s),
                )
            };
            let parent = match id.strip_prefix("cfg:") {
                Some(name) => self.keys.by_name(name).map(read),
                None => self.db_keys.with_spec(&id, read),
            };
            let Some((parent_usable, parent_creator, parent_limits)) = parent else {
                return Err(auth::unauthorized(
                    "The key that made this API key no longer exists.",
                ));
            };
            if !parent_usable {
                return Err(auth::unauthorized(
                    "The key that made this API key has been revoked or has expired.",
                ));
            }
            limits.extend(parent_limits);
            chain.push(id);
            creator = parent_creator;
        }
        if matches!(creator.as_deref(), None | Some("master")) {
            return Ok((chain, limits));
        }
        Err(auth::unauthorized(
            "This API key's chain of creators is too long.",
        ))
    }

    fn virtual_key(&self, hash: &[u8; 32]) -> Option<Principal> {
        if let Some(spec) = self.keys.find(hash) {
            return Some(Principal {
                key_id: Some(format!("cfg:{}", spec.name)),
                admin: spec.admin,
                spec: Box::new(spec.clone()),
                local_only: None,
                creators: Vec::new(),
                creator_limits: Vec::new(),
            });
        }
        self.db_keys.find(hash).map(|k| Principal {
            key_id: Some(k.id),
            admin: k.spec.admin,
            spec: Box::new(k.spec),
            local_only: None,
            creators: Vec::new(),
            creator_limits: Vec::new(),
        })
    }
}

/// The ids up key `id`'s `created_by` chain, its maker first (`master` and keys no longer
/// known end it; at most [`MAX_CREATOR_DEPTH`]; a loop ends at the first repeat): the keys
/// whose spend its cost counts on. `makers` maps database key ids to their maker
/// ([`KeyCache::makers`]).
pub(super) fn creators_of(
    keys: &ConfigKeys,
    makers: &HashMap<String, String>,
    id: &str,
) -> Vec<String> {
    let made_by = |id: &str| match id.strip_prefix("cfg:") {
        Some(name) => keys.by_name(name).and_then(|s| s.created_by.clone()),
        None => makers.get(id).cloned(),
    };
    let mut chain = Vec::new();
    let mut creator = made_by(id);
    while let Some(c) = creator.filter(|c| c != "master") {
        if chain.len() == MAX_CREATOR_DEPTH || c == id || chain.contains(&c) {
            break;
        }
        creator = made_by(&c);
        chain.push(c);
    }
    chain
}
