//! `rackboot ca`: a local certificate authority and a server certificate for
//! `[http] tls_cert`/`tls_key`, made with rcgen (ECDSA P-256). The CA is made
//! once and kept; each run signs a new server certificate for the names
//! given. The CA's SHA-256 fingerprint is what iPXE's `trust` setting and
//! boot media carry, so that a chain is authenticated from its first request.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use sha2::{Digest, Sha256};

/// `rackboot ca`
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Where the CA (ca.pem, ca.key) is kept and the server's certificate
    /// (server.pem, server.key) is written.
    #[arg(long, value_name = "DIR", default_value = "/etc/rackboot/tls")]
    dir: PathBuf,
    /// A name or address the server is reached by (repeatable): each goes in
    /// the certificate's subject alternative names.
    #[arg(long = "name", value_name = "NAME", required = true)]
    names: Vec<String>,
}

/// Runs `rackboot ca`.
pub(crate) fn run(args: &Args) -> ExitCode {
    match make(&args.dir, &args.names) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rackboot ca: {e}");
            ExitCode::FAILURE
        }
    }
}

fn make(dir: &Path, names: &[String]) -> Result<String, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let (ca_pem, ca_key_pem) = (dir.join("ca.pem"), dir.join("ca.key"));
    let made_ca = !ca_pem.exists();
    let (ca_params, ca_key) = if made_ca {
        let key = KeyPair::generate().map_err(|e| format!("cannot make a key: {e}"))?;
        let mut p = CertificateParams::default();
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        p.distinguished_name
            .push(DnType::CommonName, "rackboot local CA");
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        (p, key)
    } else {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
        };
        let key = KeyPair::from_pem(&read(&ca_key_pem)?)
            .map_err(|e| format!("{}: not a private key: {e}", ca_key_pem.display()))?;
        let p = CertificateParams::from_ca_cert_pem(&read(&ca_pem)?)
            .map_err(|e| format!("{}: not a certificate: {e}", ca_pem.display()))?;
        (p, key)
    };
    let ca = ca_params
        .self_signed(&ca_key)
        .map_err(|e| format!("cannot sign the CA: {e}"))?;
    let mut server = CertificateParams::default();
    server
        .distinguished_name
        .push(DnType::CommonName, names[0].as_str());
    for n in names {
        server.subject_alt_names.push(match n.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(
                n.clone()
                    .try_into()
                    .map_err(|_| format!("--name {n:?} is neither an address nor a DNS name"))?,
            ),
        });
    }
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let server_key = KeyPair::generate().map_err(|e| format!("cannot make a key: {e}"))?;
    let cert = server
        .signed_by(&server_key, &ca, &ca_key)
        .map_err(|e| format!("cannot sign the server's certificate: {e}"))?;
    let write = |name: &str, text: &str, private: bool| -> Result<PathBuf, String> {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        if private {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| format!("cannot restrict {}: {e}", path.display()))?;
        }
        Ok(path)
    };
    if made_ca {
        write("ca.pem", &ca.pem(), false)?;
        write("ca.key", &ca_key.serialize_pem(), true)?;
    }
    // The server's file holds its certificate, then the CA's: the chain.
    let ca_text = std::fs::read_to_string(&ca_pem).unwrap_or_else(|_| ca.pem());
    let cert_path = write("server.pem", &format!("{}{ca_text}", cert.pem()), false)?;
    let key_path = write("server.key", &server_key.serialize_pem(), true)?;
    let fingerprint = fingerprint(&ca_text).unwrap_or_default();
    Ok(format!(
        "{} {}\nserver certificate for {}: {}\nserver key: {}\n\
         CA SHA-256 fingerprint (iPXE `set trust`, curl --cacert {}): {fingerprint}\n\
         serve it with:\n  [http]\n  tls_cert = {:?}\n  tls_key = {:?}\n",
        if made_ca {
            "made the CA"
        } else {
            "kept the CA"
        },
        ca_pem.display(),
        names.join(", "),
        cert_path.display(),
        key_path.display(),
        ca_pem.display(),
        cert_path.display(),
        key_path.display(),
    ))
}

/// The SHA-256 of the first certificate in `pem`, in hex.
fn fingerprint(pem: &str) -> Option<String> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).ok()?;
    Some(
        Sha256::digest(der.as_ref())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}
