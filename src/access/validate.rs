//! One validation of a key's settings, used by the config (`keys:`), the CLI
//! (`sluice keys create`) and the admin API (`POST /admin/keys`), and the rule that a key
//! creates keys with at most its own rights.
//!
//! Errors are `(field, message)`: the config prefixes `keys[i].`, the CLI prints
//! `error: --field: message` and exits 2, the admin API answers 400 with `param: field`.

use crate::access::auth::{KeySpec, Principal, parse_expiry};
use crate::config::Config;

/// The names a key may refer to: client-facing model names (models and deployments) and
/// policy names. `None` fields are not checked (the CLI without a config).
#[derive(Debug, Clone, Default)]
pub struct Names {
    /// Model and deployment names.
    pub models: Option<Vec<String>>,
    /// Policy names.
    pub policies: Option<Vec<String>>,
}

impl Names {
    /// The names `config` defines.
    pub fn of(config: &Config) -> Self {
        Names {
            models: Some(
                config
                    .models
                    .iter()
                    .map(|m| m.name.clone())
                    .chain(config.deployments.iter().map(|d| d.name.clone()))
                    .collect(),
            ),
            policies: Some(config.policies.iter().map(|p| p.name.clone()).collect()),
        }
    }
}

/// Why a key's `rpm: 0` or `tpm: 0` is refused, and what to do instead.
pub const ZERO_KEY_LIMIT: &str = "must be at least 1 (leave it out for no limit); to block a key, set `disabled: true` or revoke it (`sluice keys revoke`, `DELETE /admin/keys/{id}`)";

/// The logging modes a key may force.
pub const LOG_MODES: [&str; 4] = ["full", "redacted", "metadata", "off"];

/// Checks `spec`: non-empty `name`; `expires` is RFC 3339 or `YYYY-MM-DD`; `log` is one of
/// [`LOG_MODES`]; `rpm` and `tpm`, when set, are at least 1 (a limit of 0 is refused, not
/// read as "no requests": a key is blocked with `disabled` or by revoking it); every `models`
/// entry (a name or a glob) names or matches a configured model or deployment; every policy
/// exists; a budget is a finite amount ≥ 0.
///
/// Errors: `(field, message)`.
pub fn validate(spec: &KeySpec, names: &Names) -> Result<(), (String, String)> {
    let err = |f: &str, m: String| Err((f.to_string(), m));
    if spec.name.trim().is_empty() {
        return err("name", "must not be empty".into());
    }
    if let Some(e) = &spec.expires
        && parse_expiry(e).is_none()
    {
        return err(
            "expires",
            format!("`{e}` is not a timestamp (RFC 3339, or YYYY-MM-DD for UTC midnight)"),
        );
    }
    if let Some(l) = &spec.log
        && !LOG_MODES.contains(&l.as_str())
    {
        return err(
            "log",
            format!("`{l}` is not one of {}", LOG_MODES.join(", ")),
        );
    }
    for (field, v) in [("rpm", spec.rpm), ("tpm", spec.tpm)] {
        if v == Some(0) {
            return err(field, ZERO_KEY_LIMIT.into());
        }
    }
    if spec.created_by.is_some() {
        return err(
            "created_by",
            "is set by Sluice (the creating key's id); leave it out".into(),
        );
    }
    if let Some(b) = &spec.budget
        && !(b.usd.is_finite() && b.usd >= 0.0)
    {
        return err("budget.usd", "must be a number ≥ 0".into());
    }
    if let Some(models) = &names.models {
        for (i, m) in spec.models.iter().enumerate() {
            let pattern = glob::Pattern::new(m).ok();
            let known = models
                .iter()
                .any(|n| n == m || pattern.as_ref().is_some_and(|p| p.matches(n)));
            if !known {
                return err(
                    &format!("models[{i}]"),
                    format!("`{m}` names no configured model or deployment"),
                );
            }
        }
    }
    if let Some(policies) = &names.policies {
        for (i, p) in spec.policies.iter().enumerate() {
            if !policies.contains(p) {
                return err(
                    &format!("policies[{i}]"),
                    format!("no policy is named `{p}`"),
                );
            }
        }
    }
    Ok(())
}

/// Whether `creator` is bound by [`within_rights`]: a virtual key, not the master key nor
/// the caller when no master key is set.
fn is_limited(creator: &Principal) -> bool {
    creator.key_id.is_some() && creator.key_id.as_deref() != Some("master")
}

/// Fills what a key made by `creator` takes from it: `created_by` (the creator's id, when it
/// has one) always; for a limited creator ([`within_rights`] applies), its `team` and `tags`
/// when `spec` leaves them out, since policies match on them, and its `log` mode.
pub fn inherit(creator: &Principal, spec: &mut KeySpec) {
    spec.created_by = creator.key_id.clone();
    if !is_limited(creator) {
        return;
    }
    if spec.team.is_none() {
        spec.team = creator.spec.team.clone();
    }
    if spec.tags.is_empty() {
        spec.tags = creator.spec.tags.clone();
    }
    if spec.log.is_none() {
        spec.log = creator.spec.log.clone();
    }
}

/// Checks that `creator` may make a key with `spec`: the master key (and anyone when no
/// master key is set) may make any key; another key only one with at most its own rights —
/// admin only if it is admin, models within its models, rpm/tpm/budget no larger (and set
/// when its own are), its policies kept, its log mode kept, expiring no later, and its team
/// and tags kept (policies match on them; a tag more only makes more policies apply). A
/// child's requests count against its own limits and budget and against its creator's (and
/// theirs, up the chain, [`Principal::creator_limits`]): the keys a key made cannot together
/// spend more than it may.
///
/// Errors: `(field, message)` naming the first right that exceeds the creator's.
pub fn within_rights(creator: &Principal, spec: &KeySpec) -> Result<(), (String, String)> {
    let parent = &creator.spec;
    if !is_limited(creator) {
        return Ok(());
    }
    let over = |f: &str| Err((f.to_string(), format!("exceeds the creating key's `{f}`")));
    if let Some(team) = &parent.team
        && spec.team.as_ref() != Some(team)
    {
        return Err((
            "team".into(),
            format!("must be the creating key's team `{team}`"),
        ));
    }
    if let Some(t) = parent.tags.iter().find(|t| !spec.tags.contains(t)) {
        return Err((
            "tags".into(),
            format!("must keep the creating key's tags (`{t}` is missing)"),
        ));
    }
    if spec.admin && !parent.admin {
        return over("admin");
    }
    // A glob is within the creator's rights only as one of its own patterns: read as a model
    // name, `gpt-*` would pass a creator's `gpt-?` and then reach `gpt-4o-expensive`.
    let within = |m: &String| match m.contains(['*', '?', '[']) {
        true => parent.models.contains(m),
        false => creator.may_use(m),
    };
    if !parent.models.is_empty() && (spec.models.is_empty() || !spec.models.iter().all(within)) {
        return over("models");
    }
    let limit_over = |mine: Option<u32>, theirs: Option<u32>| match (mine, theirs) {
        (Some(p), Some(c)) => c > p,
        (Some(_), None) => true,
        _ => false,
    };
    if limit_over(parent.rpm, spec.rpm) {
        return over("rpm");
    }
    if limit_over(parent.tpm, spec.tpm) {
        return over("tpm");
    }
    if let Some(pb) = &parent.budget {
        let ok = spec.budget.as_ref().is_some_and(|b| {
            b.usd <= pb.usd && b.period == pb.period && (b.remote_only <= pb.remote_only)
        });
        if !ok {
            return over("budget");
        }
    }
    if parent.policies.iter().any(|p| !spec.policies.contains(p)) {
        return over("policies");
    }
    // Kept whether the creator names a mode or follows the gateway's default: a key may not
    // make keys whose requests its own log would record and theirs not (`log: off`).
    if spec.log != parent.log {
        return over("log");
    }
    if let Some(pe) = parent.expires.as_deref().and_then(parse_expiry) {
        let ce = spec.expires.as_deref().and_then(parse_expiry);
        if ce.is_none_or(|c| c > pe) {
            return over("expires");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_rpm_or_tpm_is_refused_naming_the_key_and_how_to_block() {
        let names = Names::default();
        for (field, spec) in [
            (
                "rpm",
                KeySpec {
                    name: "k".into(),
                    rpm: Some(0),
                    ..Default::default()
                },
            ),
            (
                "tpm",
                KeySpec {
                    name: "k".into(),
                    tpm: Some(0),
                    ..Default::default()
                },
            ),
        ] {
            assert_eq!(
                validate(&spec, &names),
                Err((field.to_string(), ZERO_KEY_LIMIT.to_string()))
            );
        }
        let one = KeySpec {
            name: "k".into(),
            rpm: Some(1),
            tpm: Some(1),
            ..Default::default()
        };
        assert_eq!(validate(&one, &names), Ok(()));
    }

    fn limited(team: Option<&str>, tags: &[&str]) -> Principal {
        Principal {
            key_id: Some("cfg:sub".into()),
            spec: Box::new(KeySpec {
                name: "sub".into(),
                admin: true,
                team: team.map(str::to_string),
                tags: tags.iter().map(|t| t.to_string()).collect(),
                ..Default::default()
            }),
            admin: true,
            local_only: None,
            creators: Vec::new(),
            creator_limits: Vec::new(),
        }
    }

    fn child(team: Option<&str>, tags: &[&str]) -> KeySpec {
        KeySpec {
            name: "child".into(),
            team: team.map(str::to_string),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_limited_creators_children_keep_its_team_and_tags() {
        let parent = limited(Some("contractors"), &["untrusted"]);
        // Left out: inherited, and then within rights.
        let mut spec = child(None, &[]);
        inherit(&parent, &mut spec);
        assert_eq!(spec.team.as_deref(), Some("contractors"));
        assert_eq!(spec.tags, ["untrusted"]);
        assert_eq!(spec.created_by.as_deref(), Some("cfg:sub"));
        assert_eq!(within_rights(&parent, &spec), Ok(()));
        // Another team, or the tags without the creator's: refused, naming the field.
        let mut spec = child(Some("staff"), &[]);
        inherit(&parent, &mut spec);
        assert_eq!(
            within_rights(&parent, &spec),
            Err((
                "team".to_string(),
                "must be the creating key's team `contractors`".to_string()
            ))
        );
        let mut spec = child(None, &["trusted"]);
        inherit(&parent, &mut spec);
        assert_eq!(
            within_rights(&parent, &spec),
            Err((
                "tags".to_string(),
                "must keep the creating key's tags (`untrusted` is missing)".to_string()
            ))
        );
        // A tag more only makes more policies apply.
        let mut spec = child(Some("contractors"), &["untrusted", "ci"]);
        inherit(&parent, &mut spec);
        assert_eq!(within_rights(&parent, &spec), Ok(()));
        // The master key makes any key, and is recorded as the creator.
        let master = Principal {
            key_id: Some("master".into()),
            ..Principal::anonymous()
        };
        let mut spec = child(Some("staff"), &[]);
        inherit(&master, &mut spec);
        assert_eq!(spec.created_by.as_deref(), Some("master"));
        assert_eq!(spec.tags, Vec::<String>::new());
        assert_eq!(within_rights(&master, &spec), Ok(()));
    }

    /// A creator limited to `gpt-?` cannot give a child `gpt-*` (read as a model name, the
    /// glob matched `gpt-?`, and the child then reached `gpt-4o-expensive`); its own pattern
    /// and model names it may use are within its rights. And at request time a key may use a
    /// model only when every maker up its chain may, whatever it was given.
    #[test]
    fn a_child_key_gets_no_model_its_maker_may_not_use() {
        let mut parent = limited(None, &[]);
        parent.spec.models = vec!["gpt-?".into(), "local-*".into()];
        let with = |models: &[&str]| KeySpec {
            models: models.iter().map(|m| m.to_string()).collect(),
            ..child(None, &[])
        };
        let over = Err((
            "models".to_string(),
            "exceeds the creating key's `models`".to_string(),
        ));
        for models in [&["gpt-*"][..], &["*"], &["gpt-[0-9]*"], &["local-**"], &[]] {
            assert_eq!(within_rights(&parent, &with(models)), over, "{models:?}");
        }
        for models in [&["gpt-?"][..], &["gpt-4", "local-*"], &["local-llama"]] {
            assert_eq!(within_rights(&parent, &with(models)), Ok(()), "{models:?}");
        }
        let key = Principal {
            key_id: Some("k1".into()),
            spec: Box::new(with(&["gpt-*"])),
            creators: vec!["cfg:sub".into()],
            creator_limits: crate::access::auth::CreatorLimits::of("cfg:sub", &parent.spec)
                .into_iter()
                .collect(),
            ..limited(None, &[])
        };
        assert!(key.may_use("gpt-4"));
        assert!(!key.may_use("gpt-4o-expensive"));
        assert!(!key.may_use("claude"));
    }

    /// Found by an attacker test: a delegated admin key without a `log` mode of its own (so
    /// the gateway's default, `full`) made children with `log: off`, whose requests left no
    /// row. A limited creator's children keep its mode, named or not; left out, it is inherited.
    #[test]
    fn a_child_key_keeps_its_makers_log_mode() {
        let over = Err((
            "log".to_string(),
            "exceeds the creating key's `log`".to_string(),
        ));
        for parent_log in [None, Some("metadata")] {
            let mut parent = limited(None, &[]);
            parent.spec.log = parent_log.map(str::to_string);
            for log in ["off", "full", "redacted"] {
                let spec = KeySpec {
                    log: Some(log.into()),
                    ..child(None, &[])
                };
                assert_eq!(
                    within_rights(&parent, &spec),
                    over,
                    "{parent_log:?} → {log}"
                );
            }
            let mut spec = child(None, &[]);
            inherit(&parent, &mut spec);
            assert_eq!(spec.log.as_deref(), parent_log);
            assert_eq!(within_rights(&parent, &spec), Ok(()));
        }
    }

    #[test]
    fn created_by_is_not_the_callers_to_set() {
        let mut spec = child(None, &[]);
        spec.created_by = Some("master".into());
        assert_eq!(
            validate(&spec, &Names::default()).unwrap_err().0,
            "created_by"
        );
    }
}
