//! Openness tiers, hosting, and the five freedoms a route leaves its user.
//!
//! The table (from the project's source material, see docs/policies.md "Openness tiers and freedoms"):
//!
//! | tier | access | model control | data control | autonomy | trust |
//! |---|---|---|---|---|---|
//! | api | api-restricted | api-restricted | none | none | none |
//! | available-weights | with-conditions | with-conditions | complete | with-conditions | none |
//! | open-weight | full | deep | complete | study-restricted | none |
//! | open-source | full | deep | complete | detailed-study-restricted | partial |
//! | reproducible | full | deep | complete | complete | complete |
//!
//! A `remote` deployment has `data_control: none` and `autonomy: none` whatever its tier.

use serde::{Deserialize, Serialize};

/// How open a model is, from least to most open (the derived `Ord` follows this order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Openness {
    /// Reachable only through someone's API.
    Api,
    /// Weights downloadable under a licence with conditions (use restrictions, MAU caps).
    AvailableWeights,
    /// Weights under an open licence (Apache-2.0, MIT), no training code or data.
    OpenWeight,
    /// Open weights plus training code and a detailed report; data partly open.
    OpenSource,
    /// Weights, code and data all public: the model can be rebuilt.
    Reproducible,
}

impl Openness {
    /// Every tier, least open first.
    pub const ALL: [Openness; 5] = [
        Openness::Api,
        Openness::AvailableWeights,
        Openness::OpenWeight,
        Openness::OpenSource,
        Openness::Reproducible,
    ];

    /// The config and header spelling (`open-weight`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Openness::Api => "api",
            Openness::AvailableWeights => "available-weights",
            Openness::OpenWeight => "open-weight",
            Openness::OpenSource => "open-source",
            Openness::Reproducible => "reproducible",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Where a deployment runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Hosting {
    /// On the user's machine or private network: the data stays there.
    Local,
    /// On someone else's service.
    Remote,
}

impl Hosting {
    /// `local` or `remote`.
    pub fn as_str(self) -> &'static str {
        match self {
            Hosting::Local => "local",
            Hosting::Remote => "remote",
        }
    }
}

/// One of the five freedoms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Freedom {
    /// Who may use the model, and how.
    Access,
    /// How far the user can change the model (fine-tune, quantise, inspect).
    ModelControl,
    /// Whether the user's data stays under their control.
    DataControl,
    /// Whether the user can study and rebuild the model independently.
    Autonomy,
    /// How far the model's making can be verified.
    Trust,
}

impl Freedom {
    /// All five, in table order.
    pub const ALL: [Freedom; 5] = [
        Freedom::Access,
        Freedom::ModelControl,
        Freedom::DataControl,
        Freedom::Autonomy,
        Freedom::Trust,
    ];

    /// The config key (`data_control`, …).
    pub fn key(self) -> &'static str {
        match self {
            Freedom::Access => "access",
            Freedom::ModelControl => "model_control",
            Freedom::DataControl => "data_control",
            Freedom::Autonomy => "autonomy",
            Freedom::Trust => "trust",
        }
    }

    /// The levels of this freedom, lowest first. Requirements compare positions in this list.
    pub fn levels(self) -> &'static [&'static str] {
        match self {
            Freedom::Access => &["api-restricted", "with-conditions", "full"],
            Freedom::ModelControl => &["api-restricted", "with-conditions", "deep"],
            Freedom::DataControl => &["none", "complete"],
            Freedom::Autonomy => &[
                "none",
                "with-conditions",
                "study-restricted",
                "detailed-study-restricted",
                "complete",
            ],
            Freedom::Trust => &["none", "partial", "complete"],
        }
    }

    /// Position of `level` in [`Freedom::levels`], or `None` when it is not a level of this
    /// freedom.
    pub fn rank(self, level: &str) -> Option<usize> {
        self.levels().iter().position(|l| *l == level)
    }

    /// The level a tier gives when self-hosted (the table's row for `tier`).
    pub fn of_tier(self, tier: Openness) -> &'static str {
        // Rows of the table, indexed by tier.
        let row: [&str; 5] = match self {
            Freedom::Access => ["api-restricted", "with-conditions", "full", "full", "full"],
            Freedom::ModelControl => ["api-restricted", "with-conditions", "deep", "deep", "deep"],
            Freedom::DataControl => ["none", "complete", "complete", "complete", "complete"],
            Freedom::Autonomy => [
                "none",
                "with-conditions",
                "study-restricted",
                "detailed-study-restricted",
                "complete",
            ],
            Freedom::Trust => ["none", "none", "none", "partial", "complete"],
        };
        row[tier.index()]
    }

    /// The level of a route: the tier's, with `data_control` and `autonomy` capped to `none`
    /// when the deployment is remote.
    pub fn of_route(self, tier: Openness, hosting: Hosting) -> &'static str {
        match (self, hosting) {
            (Freedom::DataControl | Freedom::Autonomy, Hosting::Remote) => "none",
            _ => self.of_tier(tier),
        }
    }
}

/// The five freedoms of one route, as level names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Freedoms {
    /// `api-restricted | with-conditions | full`
    pub access: &'static str,
    /// `api-restricted | with-conditions | deep`
    pub model_control: &'static str,
    /// `none | complete`
    pub data_control: &'static str,
    /// `none | with-conditions | study-restricted | detailed-study-restricted | complete`
    pub autonomy: &'static str,
    /// `none | partial | complete`
    pub trust: &'static str,
}

impl Freedoms {
    /// The freedoms of a deployment of `tier` hosted at `hosting`.
    pub fn of(tier: Openness, hosting: Hosting) -> Self {
        Freedoms {
            access: Freedom::Access.of_route(tier, hosting),
            model_control: Freedom::ModelControl.of_route(tier, hosting),
            data_control: Freedom::DataControl.of_route(tier, hosting),
            autonomy: Freedom::Autonomy.of_route(tier, hosting),
            trust: Freedom::Trust.of_route(tier, hosting),
        }
    }

    /// The level of one freedom.
    pub fn get(&self, f: Freedom) -> &'static str {
        match f {
            Freedom::Access => self.access,
            Freedom::ModelControl => self.model_control,
            Freedom::DataControl => self.data_control,
            Freedom::Autonomy => self.autonomy,
            Freedom::Trust => self.trust,
        }
    }
}

/// Whether `base_url` points at this machine: `localhost` (and `*.localhost`), a loopback
/// address (`127.0.0.0/8`, `::1`, `::ffff:127.x.y.z`) or a Unix socket (`unix:` /
/// `http+unix:` URLs). Everything else — private networks included, since a LAN proxy may
/// forward to a hosted API, and names that would need DNS — counts as remote unless the
/// deployment declares `hosting: local`.
pub fn is_local_url(base_url: &str) -> bool {
    let Ok(url) = url::Url::parse(base_url) else {
        return false;
    };
    if matches!(url.scheme(), "unix" | "http+unix") {
        return true;
    }
    match url.host() {
        Some(url::Host::Domain(d)) => {
            let d = d.to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        None => false,
    }
}

/// Whether `base_url` is a private-network address (RFC 1918 / link-local IPv4, unique-local
/// `fc00::/7` or link-local `fe80::/10` IPv6): inferred `remote`, which `sluice check` warns
/// about, since such a server is often the organisation's own.
pub fn is_private_url(base_url: &str) -> bool {
    let Ok(url) = url::Url::parse(base_url) else {
        return false;
    };
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_private() || ip.is_link_local(),
        Some(url::Host::Ipv6(ip)) => {
            let first = ip.segments()[0];
            (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
        _ => false,
    }
}

/// Whether an Ollama model tag runs on Ollama's hosted service (`…-cloud`, `…:cloud`): such a
/// route is remote even when the Ollama server is local.
pub fn is_cloud_tag(model: &str) -> bool {
    let m = model.to_ascii_lowercase();
    m.ends_with("-cloud") || m.ends_with(":cloud")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_are_ordered_least_to_most_open() {
        assert!(Openness::Api < Openness::AvailableWeights);
        assert!(Openness::AvailableWeights < Openness::OpenWeight);
        assert!(Openness::OpenWeight < Openness::OpenSource);
        assert!(Openness::OpenSource < Openness::Reproducible);
    }

    #[test]
    fn the_freedoms_table_self_hosted() {
        let rows = [
            (
                Openness::Api,
                ["api-restricted", "api-restricted", "none", "none", "none"],
            ),
            (
                Openness::AvailableWeights,
                [
                    "with-conditions",
                    "with-conditions",
                    "complete",
                    "with-conditions",
                    "none",
                ],
            ),
            (
                Openness::OpenWeight,
                ["full", "deep", "complete", "study-restricted", "none"],
            ),
            (
                Openness::OpenSource,
                [
                    "full",
                    "deep",
                    "complete",
                    "detailed-study-restricted",
                    "partial",
                ],
            ),
            (
                Openness::Reproducible,
                ["full", "deep", "complete", "complete", "complete"],
            ),
        ];
        for (tier, want) in rows {
            let f = Freedoms::of(tier, Hosting::Local);
            let got = [
                f.access,
                f.model_control,
                f.data_control,
                f.autonomy,
                f.trust,
            ];
            assert_eq!(got, want, "{tier:?}");
        }
    }

    #[test]
    fn remote_caps_data_control_and_autonomy_only() {
        for tier in Openness::ALL {
            let local = Freedoms::of(tier, Hosting::Local);
            let remote = Freedoms::of(tier, Hosting::Remote);
            assert_eq!(remote.data_control, "none");
            assert_eq!(remote.autonomy, "none");
            assert_eq!(remote.access, local.access);
            assert_eq!(remote.model_control, local.model_control);
            assert_eq!(remote.trust, local.trust);
        }
    }

    #[test]
    fn every_table_level_is_a_known_level() {
        for f in Freedom::ALL {
            for tier in Openness::ALL {
                assert!(f.rank(f.of_tier(tier)).is_some(), "{f:?} {tier:?}");
            }
            // Levels never go down as the tier goes up.
            let ranks: Vec<usize> = Openness::ALL
                .iter()
                .filter_map(|t| f.rank(f.of_tier(*t)))
                .collect();
            assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "{f:?}");
        }
    }

    #[test]
    fn local_urls() {
        for u in [
            "http://127.0.0.1:8080/v1",
            "http://127.9.8.7/v1",
            "http://localhost:11434",
            "http://ollama.localhost:11434",
            "http://[::1]:8080",
            "http://[::ffff:127.0.0.1]:8080",
            "unix:/run/llama.sock",
        ] {
            assert!(is_local_url(u), "{u}");
            assert!(!is_private_url(u), "{u}");
        }
        // Private networks are remote unless declared (a LAN proxy may forward to a SaaS).
        for u in [
            "http://10.1.2.3/v1",
            "http://172.16.0.9",
            "http://192.168.1.20:8000",
            "http://[fd12::1]/v1",
            "http://[fe80::1]/v1",
            "http://169.254.0.1",
        ] {
            assert!(!is_local_url(u), "{u}");
            assert!(is_private_url(u), "{u}");
        }
        for u in [
            "https://api.openai.com/v1",
            "http://8.8.8.8",
            "http://172.32.0.1",
            "http://[2001:db8::1]",
            "http://localhost.example.com",
            "not a url",
        ] {
            assert!(!is_local_url(u), "{u}");
            assert!(!is_private_url(u), "{u}");
        }
    }

    #[test]
    fn cloud_tags() {
        assert!(is_cloud_tag("kimi-k2:1t-cloud"));
        assert!(is_cloud_tag("glm-4.6:cloud"));
        assert!(!is_cloud_tag("llama3.2:1b"));
    }
}
