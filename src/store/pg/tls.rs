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

/// Takes `sslrootcert` and the `verify-*` modes out of `url` (a `postgres://` URL or libpq's
/// `key=value` form) for tokio-postgres, which refuses them; returns the URL to parse and the
/// check to make.
///
/// Errors: an empty `sslrootcert`.
pub fn split(url: &str) -> Result<(String, TlsCheck), StoreError> {
    let (mut verify, mut root, mut require) = (Verify::Nothing, None::<String>, false);
    let mut take = |key: &str, value: &str| -> Option<String> {
        match (key, value) {
            ("sslmode", "require") => require = true,
            ("sslmode", "verify-full") => verify = Verify::Full,
            ("sslmode", "verify-ca") => verify = Verify::Chain,
            ("sslrootcert", v) => {
                root = Some(v.to_string());
                return None;
            }
            _ => return Some(value.to_string()),
        }
        Some("require".to_string())
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        split_url(url, &mut take)
    } else {
        split_key_values(url, &mut take)
    };
    let root_cert = match root.as_deref() {
        Some("") => {
            return Err(StoreError::Invalid(
                "log.url: sslrootcert is empty (a PEM file of CA certificates, or `system`)".into(),
            ));
        }
        None | Some("system") => None,
        Some(path) => Some(PathBuf::from(path)),
    };
    if root_cert.is_some() && require && verify == Verify::Nothing {
        // libpq: `require` with a root certificate verifies the chain.
        verify = Verify::Chain;
    }
    Ok((rest, TlsCheck { verify, root_cert }))
}

/// The query of a `postgres://` URL, pair by pair through `take` (`None`: drop the pair).
fn split_url(url: &str, take: &mut impl FnMut(&str, &str) -> Option<String>) -> String {
    let Some((head, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let kept: Vec<String> = query
        .split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decoded = percent_encoding::percent_decode_str(v).decode_utf8_lossy();
            take(k, &decoded).map(|nv| {
                if nv == *decoded {
                    pair.to_string()
                } else {
                    format!("{k}={nv}")
                }
            })
        })
        .collect();
    if kept.is_empty() {
        head.to_string()
    } else {
        format!("{head}?{}", kept.join("&"))
    }
}

/// libpq's `key=value` form, separated by whitespace (values with spaces are quoted; those
/// pairs are kept as they are).
fn split_key_values(url: &str, take: &mut impl FnMut(&str, &str) -> Option<String>) -> String {
    url.split_whitespace()
        .filter_map(|pair| match pair.split_once('=') {
            Some((k, v)) if !v.starts_with('\'') => take(k, v).map(|nv| format!("{k}={nv}")),
            _ => Some(pair.to_string()),
        })
        .collect::<Vec<_>>()
        .join(" ")
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
                "postgresql://u@db/log?application_name=x&sslmode=verify-ca",
                "postgresql://u@db/log?application_name=x&sslmode=require",
                check(Verify::Chain, None),
            ),
            (
                "postgres://u@db/log?sslmode=require&sslrootcert=%2Ftmp%2Fca.pem",
                "postgres://u@db/log?sslmode=require",
                check(Verify::Chain, Some("/tmp/ca.pem")),
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
            (
                "host=db user=u sslmode=verify-full sslrootcert=/ca.pem dbname=log",
                "host=db user=u sslmode=require dbname=log",
                check(Verify::Full, Some("/ca.pem")),
            ),
        ];
        for (url, rest, want) in cases {
            let (got_rest, got) = split(url).unwrap();
            assert_eq!((got_rest.as_str(), &got), (rest, &want), "{url}");
        }
        assert!(matches!(
            split("postgres://u@db/log?sslrootcert="),
            Err(StoreError::Invalid(m)) if m.contains("sslrootcert is empty")
        ));
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
