//! `[http] tls_cert`/`tls_key`/`tls_listen` (and `--tls-cert`, `--tls-key`,
//! `--https`): HTTPS beside plain HTTP, the same files and pages, through
//! rustls. The certificate chain and key are read and matched here, so a
//! mistake stops the start (and `rackboot check`) naming the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};

use super::{file, Error, Overrides, Validator};

/// HTTPS, when configured.
#[derive(Debug, Clone)]
pub struct Https {
    /// Listen address (default: the HTTP address with port 443).
    pub listen: SocketAddr,
    /// The certificate chain file and the key file, as given.
    pub cert: PathBuf,
    /// The private key file.
    pub key: PathBuf,
    /// What every TLS connection starts from.
    pub server: Arc<rustls::ServerConfig>,
}

impl Validator<'_> {
    pub(super) fn https(
        &self,
        raw: &file::Http,
        cli: &Overrides,
        http: SocketAddr,
    ) -> Result<Option<Https>, Error> {
        let at = |s: &Option<toml::Spanned<String>>| s.as_ref().map(|s| s.span().start);
        let path = |c: &Option<PathBuf>, f: &Option<toml::Spanned<String>>| {
            c.clone()
                .or_else(|| f.as_ref().map(|s| PathBuf::from(s.get_ref())))
        };
        let cert = path(&cli.tls_cert, &raw.tls_cert);
        let key = path(&cli.tls_key, &raw.tls_key);
        let (cert, key) = match (cert, key) {
            (None, None) => {
                if cli.https.is_some() || raw.tls_listen.is_some() {
                    return Err(self.invalid(
                        at(&raw.tls_listen),
                        "http.tls_listen",
                        "is given without a certificate".into(),
                        "add http.tls_cert and http.tls_key (rackboot ca makes both)",
                    ));
                }
                return Ok(None);
            }
            (Some(_), None) => {
                return Err(self.invalid(
                    at(&raw.tls_cert),
                    "http.tls_key",
                    "is missing (http.tls_cert is given)".into(),
                    "name the certificate's private key file (PEM)",
                ))
            }
            (None, Some(_)) => {
                return Err(self.invalid(
                    at(&raw.tls_key),
                    "http.tls_cert",
                    "is missing (http.tls_key is given)".into(),
                    "name the certificate chain file (PEM, the server's certificate first)",
                ))
            }
            (Some(c), Some(k)) => (self.relative(&c), self.relative(&k)),
        };
        let listen = match (cli.https, &raw.tls_listen) {
            (Some(a), _) => a,
            (None, Some(s)) => s.get_ref().parse().map_err(|_| {
                self.invalid(
                    Some(s.span().start),
                    "http.tls_listen",
                    format!("is {:?}, not an address", s.get_ref()),
                    "write ADDR:PORT, e.g. \"0.0.0.0:443\"",
                )
            })?,
            (None, None) => SocketAddr::new(http.ip(), 443),
        };
        if listen == http && listen.port() != 0 {
            return Err(self.invalid(
                at(&raw.tls_listen),
                "http.tls_listen",
                format!("is {listen}, the plain HTTP address"),
                "give HTTPS its own port, e.g. 443",
            ));
        }
        let chain = CertificateDer::pem_file_iter(&cert)
            .and_then(|i| i.collect::<Result<Vec<_>, _>>())
            .map_err(|e| {
                self.invalid(
                    at(&raw.tls_cert),
                    "http.tls_cert",
                    format!("is {}: {e}", cert.display()),
                    "give a readable PEM certificate chain (rackboot ca makes one)",
                )
            })?;
        if chain.is_empty() {
            return Err(self.invalid(
                at(&raw.tls_cert),
                "http.tls_cert",
                format!("is {}, which holds no certificate", cert.display()),
                "give a PEM file with the server's certificate first",
            ));
        }
        let private = PrivateKeyDer::from_pem_file(&key).map_err(|e| {
            self.invalid(
                at(&raw.tls_key),
                "http.tls_key",
                format!("is {}: {e}", key.display()),
                "give a readable PEM private key (PKCS#8, SEC1 or PKCS#1)",
            )
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| self.invalid(None, "http.tls_cert", e.to_string(), "report this"))?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(|e| {
                self.invalid(
                    at(&raw.tls_key),
                    "http.tls_key",
                    format!("does not fit the certificate {}: {e}", cert.display()),
                    "give the key the certificate was made for",
                )
            })?;
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Some(Https {
            listen,
            cert,
            key,
            server: Arc::new(server),
        }))
    }

    /// `p`, from the config file's directory when relative.
    fn relative(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.path.parent().unwrap_or(Path::new(".")).join(p)
        }
    }
}
