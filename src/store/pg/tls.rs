//! TLS to PostgreSQL, with libpq's `sslmode` and `sslrootcert` meanings.
//!
//! `log.url` takes the connection parameters libpq users know:
//!
//! | `sslmode` | encrypted | server certificate checked |
//! |---|---|---|
//! | `disable` | never | — |
//! | `prefer` (default) | when the server offers TLS | no |
//! | `require` | always | no; with `sslrootcert`, as `verify-ca` |
//! | `verify-ca` | always | chain, not the host name |
//! | `verify-full` | always | chain and host name |
//!
//! `sslrootcert=PATH` (a PEM file of CA certificates) is then the only trust store, as in
//! libpq; without it, or with `sslrootcert=system`, the platform's store is. tokio-postgres
//! itself knows only `disable`, `prefer` and `require`: [`split`] takes `sslrootcert` and the
//! two `verify-*` modes out of the URL (a `verify-*` mode goes on as `require`) and
//! [`connector`] builds the rustls connector that checks what they ask for.

use super::StoreError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error as TlsError, SignatureScheme};
use std::path::PathBuf;
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;

/// How the server's certificate is checked, from `sslmode` and `sslrootcert`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsCheck {
    /// What is checked.
    pub verify: Verify,
    /// `sslrootcert`: the PEM file of trusted CAs; `None` for the platform's store.
    pub root_cert: Option<PathBuf>,
}

/// What of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Nothing (`prefer`, `require` without `sslrootcert`): encryption only, as libpq.
    Nothing,
    /// The chain up to a trusted CA, not the host name (`verify-ca`).
    Chain,
    /// The chain and the host name (`verify-full`).
    Full,
}

impl Verify {
    /// The `sslmode` this check stands for, for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Verify::Nothing => "no certificate check",
            Verify::Chain => "verify-ca",
            Verify::Full => "verify-full",
        }
    }
}

/// A warning for `sluice check` when the log's prompts and answers would cross a network to
/// a server whose certificate is not checked with its name: a host (or `hostaddr`) of `url`,
/// as tokio-postgres reads it, that is not loopback or a unix socket, and no `verify-full`.
/// `None` when there is nothing to warn about or `url` does not parse (the connect reports
/// that). Only host names and addresses are printed, never the URL.
pub fn unchecked_warning(url: &str) -> Option<String> {
    let (rest, check) = split(url).ok()?;
    if check.verify == Verify::Full {
        return None;
    }
    let config: postgres::Config = rest.parse().ok()?;
    // Loopback by the same rule as a deployment's `hosting: local` inference.
    let local = |host: &str| {
        let host = host.trim_matches(|c| c == '[' || c == ']');
        let bracketed = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        // (`http://`: the URL parser reads IP literals only for special schemes.)
        crate::policy::tier::is_local_url(&format!("http://{bracketed}/"))
    };
    let mut remote: Vec<String> = config
        .get_hosts()
        .iter()
        .filter_map(|h| match h {
            postgres::config::Host::Tcp(name) => Some(name.clone()),
            _ => None,
        })
        .chain(config.get_hostaddrs().iter().map(|ip| ip.to_string()))
        .filter(|host| !local(host))
        .collect();
    remote.dedup();
    (!remote.is_empty()).then(|| {
        format!(
            "log.url: prompts and answers go to {} without its certificate checked against \
             its name ({}); add sslmode=verify-full (and sslrootcert=FILE for a private CA)",
            remote.join(", "),
            check.verify.as_str()
        )
    })
}

/// Takes `sslrootcert` and the `verify-*` modes out of `url` (a `postgres://` URL or libpq's
/// `key=value` form) for tokio-postgres, which refuses them; returns the URL to parse and the
/// check to make. A `verify-*` mode goes on as `require`, as does `sslrootcert=system`
/// without a mode. Everything else in `url` is kept byte for byte.
///
/// libpq's rules that keep a check from being weaker than it looks are kept:
/// `sslrootcert=system` means `verify-full` and refuses any other mode (the system's CAs
/// vouch for any public name), and `verify-ca` (the chain without the name) needs a root file.
///
/// Errors: an empty or repeated `sslrootcert`, a repeated `sslmode`, `sslrootcert=system`
/// with a mode other than `verify-full`, `verify-ca` without a root file.
pub fn split(url: &str) -> Result<(String, TlsCheck), StoreError> {
    let bad = |m: &str| Err(StoreError::Invalid(format!("log.url: {m}")));
    let (mut mode, mut root) = (None::<String>, None::<String>);
    let mut repeated = None;
    let mut take = |key: &str, value: &str| -> Edit {
        let slot = match key {
            "sslmode" => &mut mode,
            "sslrootcert" => &mut root,
            _ => return Edit::Keep,
        };
        if slot.replace(value.to_string()).is_some() {
            repeated = Some(key.to_string());
        }
        match (key, value) {
            ("sslrootcert", _) => Edit::Drop,
            (_, "verify-full" | "verify-ca") => Edit::Require,
            _ => Edit::Keep,
        }
    };
    let is_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let mut rest = if is_url {
        edit_url(url, &mut take)
    } else {
        edit_key_values(url, &mut take)
    };
    if let Some(key) = repeated {
        return bad(&format!("{key} is given twice"));
    }
    let verify = match (mode.as_deref(), root.as_deref()) {
        (_, Some("")) => {
            return bad("sslrootcert is empty (a PEM file of CA certificates, or `system`)");
        }
        (None, Some("system")) => {
            // The system's CAs: verify-full, so TLS is required too.
            let sep = match (is_url, rest.contains('?')) {
                (true, true) => "&",
                (true, false) => "?",
                (false, _) => " ",
            };
            rest = format!("{rest}{sep}sslmode=require");
            Verify::Full
        }
        (Some(m), Some("system")) if m != "verify-full" => {
            return bad(&format!(
                "sslrootcert=system needs sslmode=verify-full, not {m} (with the system's \
                 CAs any publicly trusted certificate would pass a weaker check)"
            ));
        }
        (Some("verify-full"), _) => Verify::Full,
        (Some("verify-ca"), None | Some("system")) => {
            return bad(
                "sslmode=verify-ca needs sslrootcert=FILE (with the system's CAs it would \
                 accept any publicly trusted certificate for any name): use verify-full",
            );
        }
        (Some("verify-ca"), Some(_)) => Verify::Chain,
        // libpq: `require` with a root certificate file checks the chain.
        (Some("require"), Some(_)) => Verify::Chain,
        _ => Verify::Nothing,
    };
    let root_cert = root.filter(|r| r != "system").map(PathBuf::from);
    Ok((rest, TlsCheck { verify, root_cert }))
}

/// What [`split`] does with one parameter.
enum Edit {
    Keep,
    Drop,
    /// The value becomes `require`.
    Require,
}

/// The query of a `postgres://` URL, pair by pair (keys and values percent-decoded) through
/// `take`; kept pairs stay as they were.
fn edit_url(url: &str, take: &mut impl FnMut(&str, &str) -> Edit) -> String {
    let Some((head, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let kept: Vec<String> = query
        .split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match take(&decode(k), &decode(v)) {
                Edit::Keep => Some(pair.to_string()),
                Edit::Drop => None,
                Edit::Require => Some(format!("{k}=require")),
            }
        })
        .collect();
    if kept.is_empty() {
        head.to_string()
    } else {
        format!("{head}?{}", kept.join("&"))
    }
}

/// libpq's `key = value` form through `take` (values unquoted and unescaped for it); only the
/// pairs it changes are rewritten, the rest of the text stays as it was. A text that does not
/// parse is returned as it is (tokio-postgres then refuses it).
fn edit_key_values(text: &str, take: &mut impl FnMut(&str, &str) -> Edit) -> String {
    let Some(pairs) = key_value_pairs(text) else {
        return text.to_string();
    };
    let (mut out, mut last) = (String::new(), 0);
    for (range, key, value) in pairs {
        let new = match take(&key, &value) {
            Edit::Keep => continue,
            Edit::Drop => String::new(),
            Edit::Require => format!("{key}=require"),
        };
        out.push_str(&text[last..range.start]);
        out.push_str(&new);
        last = range.end;
    }
    out.push_str(&text[last..]);
    out
}

/// The pairs of libpq's `key = value` form: each one's byte range, key and value (single
/// quotes removed, `\'` and `\\` unescaped). `None` when the text is not of that form.
fn key_value_pairs(text: &str) -> Option<Vec<(std::ops::Range<usize>, String, String)>> {
    let b = text.as_bytes();
    let skip_spaces = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    let (mut out, mut i) = (Vec::new(), skip_spaces(0));
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i] != b'=' && !b[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = text[start..i].to_string();
        i = skip_spaces(i);
        if b.get(i) != Some(&b'=') {
            return None;
        }
        i = skip_spaces(i + 1);
        let quoted = b.get(i) == Some(&b'\'');
        if quoted {
            i += 1;
        }
        let mut value = Vec::new();
        loop {
            match (b.get(i), quoted) {
                (None, true) => return None,
                (None, false) => break,
                (Some(b'\''), true) => {
                    i += 1;
                    break;
                }
                (Some(c), false) if c.is_ascii_whitespace() => break,
                (Some(b'\\'), _) if i + 1 < b.len() => {
                    value.push(b[i + 1]);
                    i += 2;
                }
                (Some(&c), _) => {
                    value.push(c);
                    i += 1;
                }
            }
        }
        out.push((start..i, key, String::from_utf8_lossy(&value).into_owned()));
        i = skip_spaces(i);
    }
    Some(out)
}

/// The connector for `check`, on aws-lc-rs like the upstream client.
///
/// Errors: the `sslrootcert` file cannot be read or holds no certificate, or the platform's
/// store cannot be loaded.
pub fn connector(check: &TlsCheck) -> Result<MakeRustlsConnect, StoreError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let bad = |e: TlsError| StoreError::Invalid(format!("log.url: TLS: {e}"));
    let chain: Arc<dyn ServerCertVerifier> = match &check.root_cert {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    StoreError::Invalid(format!("log.url: sslrootcert {}: {e}", path.display()))
                })?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(StoreError::Invalid(format!(
                    "log.url: sslrootcert {}: no CA certificate in it",
                    path.display()
                )));
            }
            rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .map_err(|e| StoreError::Invalid(format!("log.url: TLS: {e}")))?
        }
        None => Arc::new(rustls_platform_verifier::Verifier::new(provider.clone()).map_err(bad)?),
    };
    let verifier = Arc::new(Checked {
        chain,
        verify: check.verify,
        provider: provider.clone(),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(bad)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// Checks what [`Verify`] asks for: the handshake's signatures always (the session key is the
/// certificate's), the chain and the host name by `chain` as asked.
#[derive(Debug)]
struct Checked {
    chain: Arc<dyn ServerCertVerifier>,
    verify: Verify,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Checked {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        if self.verify == Verify::Nothing {
            return Ok(ServerCertVerified::assertion());
        }
        let out = self.chain.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        match out {
            // The chain is checked before the name: a wrong name means a trusted chain.
            Err(TlsError::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if self.verify == Verify::Chain => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(verify: Verify, root: Option<&str>) -> TlsCheck {
        TlsCheck {
            verify,
            root_cert: root.map(PathBuf::from),
        }
    }

    #[test]
    fn verify_modes_and_the_root_file_leave_the_url() {
        let cases = [
            (
                "postgres://u@db:5432/log",
                "postgres://u@db:5432/log",
                check(Verify::Nothing, None),
            ),
            (
                "postgres://u@db/log?sslmode=verify-full&sslrootcert=/etc/ca.pem",
                "postgres://u@db/log?sslmode=require",
                check(Verify::Full, Some("/etc/ca.pem")),
            ),
            (
                "postgresql://u@db/log?application_name=x&sslmode=verify-ca&sslrootcert=/ca.pem",
                "postgresql://u@db/log?application_name=x&sslmode=require",
                check(Verify::Chain, Some("/ca.pem")),
            ),
            (
                "postgres://u@db/log?sslmode=require&sslrootcert=%2Ftmp%2Fca.pem",
                "postgres://u@db/log?sslmode=require",
                check(Verify::Chain, Some("/tmp/ca.pem")),
            ),
            // Keys are percent-decoded as tokio-postgres decodes them.
            (
                "postgres://u@db/log?ssl%6Dode=verify-full",
                "postgres://u@db/log?ssl%6Dode=require",
                check(Verify::Full, None),
            ),
            (
                "postgres://u@db/log?sslmode=prefer&sslrootcert=/ca.pem",
                "postgres://u@db/log?sslmode=prefer",
                check(Verify::Nothing, Some("/ca.pem")),
            ),
            (
                "postgres://u@db/log?sslmode=disable",
                "postgres://u@db/log?sslmode=disable",
                check(Verify::Nothing, None),
            ),
            (
                "postgres://u@db/log?sslmode=verify-full&sslrootcert=system",
                "postgres://u@db/log?sslmode=require",
                check(Verify::Full, None),
            ),
            // `system` alone is verify-full, and TLS is required.
            (
                "postgres://u@db/log?sslrootcert=system",
                "postgres://u@db/log?sslmode=require",
                check(Verify::Full, None),
            ),
            (
                "postgres://u@db/log?connect_timeout=3&sslrootcert=system",
                "postgres://u@db/log?connect_timeout=3&sslmode=require",
                check(Verify::Full, None),
            ),
            (
                "host=db user=u sslrootcert=system",
                "host=db user=u  sslmode=require",
                check(Verify::Full, None),
            ),
            // The key=value form: quotes, spaces around `=`, escapes; the rest kept as is.
            (
                "host=db  password='a  b sslmode=disable' sslmode = 'verify-full' sslrootcert=/ca.pem dbname=log",
                "host=db  password='a  b sslmode=disable' sslmode=require  dbname=log",
                check(Verify::Full, Some("/ca.pem")),
            ),
            (
                r"host=db password=it\'s sslmode='require' sslrootcert='/my ca.pem'",
                r"host=db password=it\'s sslmode='require' ",
                check(Verify::Chain, Some("/my ca.pem")),
            ),
        ];
        for (url, rest, want) in cases {
            let (got_rest, got) = split(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!((got_rest.as_str(), &got), (rest, &want), "{url}");
        }
    }

    #[test]
    fn check_warns_of_an_unchecked_log_across_a_network() {
        for (url, warns) in [
            ("postgres://u:p@db.example/log", true),
            ("postgres://u:p@db.example/log?sslmode=require", true),
            (
                "postgres://u:p@10.0.0.5/log?sslmode=verify-ca&sslrootcert=/ca.pem",
                true,
            ),
            ("postgres://u:p@db.example/log?sslmode=verify-full", false),
            ("postgres://u:p@db.example/log?sslrootcert=system", false),
            ("postgres://u:p@127.0.0.1:5432/log", false),
            ("postgres://u:p@localhost/log", false),
            ("postgres://u:p@[::1]/log", false),
            ("postgres://u:p@LOCALHOST/log", false),
            ("postgres://u:p@[::ffff:127.0.0.1]/log", false),
            ("postgres://u@%2Fvar%2Frun%2Fpostgresql/log", false),
            ("postgres://u@%2fvar%2frun%2fpostgresql/log", false),
            // Hosts as tokio-postgres reads them: a `host` parameter, several hosts.
            ("postgres:///log?host=db.example", true),
            ("postgres://localhost/log?host=db.example", true),
            ("postgres://db1:5432,localhost:5432/log", true),
            ("postgres://localhost/log?hostaddr=10.0.0.5", true),
            ("host=db.example user=u", true),
            ("host=/var/run/postgresql user=u", false),
        ] {
            let w = unchecked_warning(url);
            assert_eq!(w.is_some(), warns, "{url}: {w:?}");
        }
        assert_eq!(
            unchecked_warning("postgres://u:secret@db.example/log?sslmode=require").as_deref(),
            Some(
                "log.url: prompts and answers go to db.example without its certificate checked \
                 against its name (no certificate check); add sslmode=verify-full (and \
                 sslrootcert=FILE for a private CA)"
            )
        );
    }

    #[test]
    fn checks_weaker_than_they_look_are_refused() {
        for (url, message) in [
            ("postgres://u@db/log?sslrootcert=", "sslrootcert is empty"),
            (
                "postgres://u@db/log?sslmode=require&sslrootcert=system",
                "sslrootcert=system needs sslmode=verify-full, not require",
            ),
            (
                "postgres://u@db/log?sslmode=verify-ca&sslrootcert=system",
                "sslrootcert=system needs sslmode=verify-full, not verify-ca",
            ),
            (
                "postgres://u@db/log?sslmode=verify-ca",
                "sslmode=verify-ca needs sslrootcert=FILE",
            ),
            (
                "postgres://u@db/log?sslmode=verify-full&sslmode=disable",
                "sslmode is given twice",
            ),
            (
                "host=db sslrootcert=/a.pem sslrootcert=/b.pem",
                "sslrootcert is given twice",
            ),
        ] {
            match split(url) {
                Err(StoreError::Invalid(m)) => assert!(m.contains(message), "{url}: {m}"),
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_root_file_without_a_certificate_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let err = connector(&check(Verify::Full, path.to_str()))
            .err()
            .unwrap();
        assert!(err.to_string().contains("no CA certificate in it"), "{err}");
        let err = connector(&check(Verify::Full, Some("/nonexistent/ca.pem")))
            .err()
            .unwrap();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }
}
