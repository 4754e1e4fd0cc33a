//! Connecting to PostgreSQL as `ttn-lw-stack` does: a `postgresql://…` URI or a `key=value`
//! conninfo string, with libpq's `sslmode` semantics over rustls (the TLS stack and crypto
//! provider that delivery uses).
//!
//! The connection string is read by the core ([`ttn_telemetry_core::parse_conninfo`]); this
//! module takes the TLS settings out of it and hands the rest to `tokio-postgres`. Both the
//! counter (blocking `postgres`) and the collector's store (async `tokio-postgres`) connect
//! through [`PgTarget`].
//!
//! `sslmode` (default `prefer`, as in libpq and pgx):
//!
//! | mode | TLS | certificate check | falls back |
//! |---|---|---|---|
//! | `disable` | never | — | — |
//! | `allow` | only if the plain attempt fails | none | plain first, then TLS |
//! | `prefer` | first | none | to plain when TLS fails or is refused |
//! | `require` | always | none; with `sslrootcert`, as `verify-ca` (libpq's rule) | no |
//! | `verify-ca` | always | chain to `sslrootcert`, any host name | no |
//! | `verify-full` | always | chain and host name | no |
//!
//! `sslrootcert` names a PEM file of CA certificates (or `system`, which also means
//! `verify-full`, as in libpq 16+). `sslcert` and `sslkey` (both or neither) name the client's
//! certificate chain and unencrypted private key in PEM. `sslsni=0` turns SNI off.
//!
//! Decisions where SPEC is silent:
//! - `verify-ca` and `verify-full` without `sslrootcert` trust the same bundled root set as
//!   delivery (webpki roots), as pgx (ttn-lw-stack's driver) trusts the system's roots; libpq
//!   would refuse. `~/.postgresql/root.crt` and `postgresql.crt` are not read: pgx does not
//!   read them either.
//! - Keys that `tokio-postgres` does not know become server settings (`-c key=value` in the
//!   startup `options`), as pgx sends unknown keys as run-time parameters (`search_path=…`).
//!   libpq keys that change how to connect and that this module does not implement
//!   (`sslpassword`, `sslcrl`, `passfile`, `service`, `krbsrvname`, …) are refused with one line
//!   naming the key, rather than silently ignored.
//! - `fallback_application_name` is used when `application_name` is not set.
//! - With `allow` or `prefer`, when both attempts fail, the error gives both reasons.
//! - The channel binding of SCRAM (`tls-server-end-point`) is offered over TLS, hashed as
//!   RFC 5929 says: SHA-256, or SHA-384/SHA-512 when the server certificate is signed with it.

use std::fmt;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use sha2::Digest as _;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::SslMode as DriverSslMode;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};
use ttn_telemetry_core::{parse_conninfo, redact_uri};

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// Plain first; TLS (unverified) when the plain attempt fails.
    Allow,
    /// TLS (unverified) first; plain when TLS fails or the server has none.
    Prefer,
    /// TLS, unverified (verified as `verify-ca` when `sslrootcert` is given).
    Require,
    /// TLS; the chain must lead to `sslrootcert`; the host name is not checked.
    VerifyCa,
    /// TLS; the chain must lead to `sslrootcert` and the certificate must name the host.
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Option<SslMode> {
        Some(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// The name libpq gives it.
    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Where the trusted CA certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Roots {
    /// A PEM file (`sslrootcert=FILE`).
    File(PathBuf),
    /// The bundled web PKI roots (`sslrootcert=system`, or none with `verify-*`).
    System,
}

/// How the server certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Not at all (libpq `allow`, `prefer`, `require` without a root certificate).
    None,
    /// The chain, not the host name.
    Chain,
    /// The chain and the host name.
    Full,
}

/// A connection string or a TLS file that cannot be used. The message never holds a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgConnError(pub String);

impl fmt::Display for PgConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PgConnError {}

/// Keys that `tokio-postgres` reads itself.
const DRIVER_KEYS: &[&str] = &[
    "user",
    "password",
    "dbname",
    "options",
    "application_name",
    "host",
    "hostaddr",
    "port",
    "connect_timeout",
    "tcp_user_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_retries",
    "target_session_attrs",
    "channel_binding",
    "load_balance_hosts",
    "sslnegotiation",
];

/// libpq keys that change how to connect and are not implemented: refused, not ignored.
const UNSUPPORTED_KEYS: &[&str] = &[
    "passfile",
    "service",
    "servicefile",
    "krbsrvname",
    "krbspn",
    "gsslib",
    "gssdelegation",
    "gssencmode",
    "require_auth",
    "requirepeer",
    "min_protocol_version",
    "max_protocol_version",
    "replication",
];

/// A PostgreSQL database to connect to: the driver's settings and the TLS policy.
#[derive(Clone)]
pub struct PgTarget {
    config: tokio_postgres::Config,
    mode: SslMode,
    roots: Option<Roots>,
    client_cert: Option<(PathBuf, PathBuf)>,
    sni: bool,
    direct: bool,
    shown: String,
}

impl fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTarget")
            .field("database", &self.shown)
            .field("sslmode", &self.mode)
            .field("roots", &self.roots)
            .finish_non_exhaustive()
    }
}

fn quote(value: &str) -> String {
    let mut q = String::with_capacity(value.len() + 2);
    q.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('\'');
    q
}

/// `-c key=value` for the startup `options`, with spaces and backslashes escaped as the server
/// reads them.
fn server_setting(key: &str, value: &str) -> String {
    let mut s = String::from("-c ");
    for c in key.chars().chain(std::iter::once('=')).chain(value.chars()) {
        if c == ' ' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s
}

impl PgTarget {
    /// Reads a connection string (URI or conninfo). Errors name the key at fault, never a value
    /// that could be a password.
    pub fn parse(uri: &str) -> Result<PgTarget, PgConnError> {
        let settings = parse_conninfo(uri)
            .map_err(|e| PgConnError(format!("cannot be read as PostgreSQL does: {e}")))?;
        let mut mode = None;
        let mut rootcert = None;
        let (mut sslcert, mut sslkey) = (None, None);
        let mut sni = true;
        let mut driver = String::new();
        let mut server_settings: Vec<String> = Vec::new();
        let mut fallback_name = None;
        let mut has_name = false;
        let mut direct = false;
        for (key, value) in &settings {
            match key.as_str() {
                "sslmode" => {
                    mode = Some(SslMode::parse(value).ok_or_else(|| {
                        PgConnError(format!(
                            "sslmode {value:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                        ))
                    })?);
                }
                "sslrootcert" => rootcert = Some(value.clone()).filter(|v| !v.is_empty()),
                "sslcert" => sslcert = Some(PathBuf::from(value)).filter(|_| !value.is_empty()),
                "sslkey" => sslkey = Some(PathBuf::from(value)).filter(|_| !value.is_empty()),
                "sslsni" => sni = value != "0",
                "fallback_application_name" => fallback_name = Some(value.clone()),
                k if DRIVER_KEYS.contains(&k) => {
                    has_name |= k == "application_name";
                    direct |= k == "sslnegotiation" && value == "direct";
                    if k == "options" {
                        server_settings.insert(0, value.clone());
                    } else {
                        driver.push_str(&format!("{k}={} ", quote(value)));
                    }
                }
                k if k.starts_with("ssl") || UNSUPPORTED_KEYS.contains(&k) => {
                    return Err(PgConnError(format!(
                        "the connection option {k:?} is not supported by ttn-lw-telemetry"
                    )));
                }
                k => server_settings.push(server_setting(k, value)),
            }
        }
        if let Some(name) = fallback_name.filter(|_| !has_name) {
            driver.push_str(&format!("application_name={} ", quote(&name)));
        }
        if !server_settings.is_empty() {
            driver.push_str(&format!("options={}", quote(&server_settings.join(" "))));
        }
        // tokio-postgres names the option (`invalid value for option `port``), never a value.
        let config: tokio_postgres::Config =
            driver.parse().map_err(|e: tokio_postgres::Error| {
                let mut why = describe(&e);
                if raw_slash_in_userinfo(uri) {
                    why.push_str(
                        "; a raw / in the password ends the host part of a URI: write it as %2F",
                    );
                }
                PgConnError(why)
            })?;
        let mut mode = mode.unwrap_or(SslMode::Prefer);
        let roots = match rootcert.as_deref() {
            Some("system") => {
                mode = SslMode::VerifyFull;
                Some(Roots::System)
            }
            Some(file) => Some(Roots::File(PathBuf::from(file))),
            None if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) => Some(Roots::System),
            None => None,
        };
        if direct && mode == SslMode::Prefer {
            mode = SslMode::Require;
        }
        let client_cert = match (sslcert, sslkey) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                return Err(PgConnError(
                    "sslcert and sslkey must be given together".to_owned(),
                ));
            }
        };
        Ok(PgTarget {
            config,
            mode,
            roots,
            client_cert,
            sni,
            direct,
            shown: redact_uri(uri),
        })
    }

    /// The connection string as it may be shown: its password masked.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The `sslmode` in force.
    pub fn ssl_mode(&self) -> SslMode {
        self.mode
    }

    /// The driver settings, for callers that set defaults (timeouts, application name).
    pub fn config_mut(&mut self) -> &mut tokio_postgres::Config {
        &mut self.config
    }

    /// The driver settings.
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    fn check(&self) -> Check {
        match (self.mode, &self.roots) {
            (SslMode::VerifyFull, _) => Check::Full,
            (SslMode::VerifyCa, _) | (SslMode::Require, Some(_)) => Check::Chain,
            _ => Check::None,
        }
    }

    /// The attempts libpq makes, in order: with TLS or not.
    fn attempts(&self) -> &'static [bool] {
        match self.mode {
            SslMode::Disable => &[false],
            SslMode::Allow => &[false, true],
            SslMode::Prefer => &[true, false],
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => &[true],
        }
    }

    /// The rustls client configuration for this target (reads the certificate files).
    fn tls_config(&self) -> Result<Arc<ClientConfig>, PgConnError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| PgConnError(format!("TLS set-up failed: {e}")))?;
        let roots = match &self.roots {
            Some(r) if self.check() != Check::None => Some(Arc::new(load_roots(r)?)),
            _ => None,
        };
        let verifier: Arc<dyn ServerCertVerifier> = Arc::new(Verifier {
            check: self.check(),
            roots,
            algs: provider.signature_verification_algorithms,
        });
        let builder = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match &self.client_cert {
            Some((cert, key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| PgConnError(format!("sslcert {}: {e}", cert.display())))?;
                if chain.is_empty() {
                    return Err(PgConnError(format!(
                        "sslcert {}: holds no PEM certificate",
                        cert.display()
                    )));
                }
                let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                    PgConnError(format!(
                        "sslkey {}: {e} (an unencrypted PEM private key is expected)",
                        key.display()
                    ))
                })?;
                builder
                    .with_client_auth_cert(chain, key_der)
                    .map_err(|e| PgConnError(format!("sslcert/sslkey: {e}")))?
            }
            None => builder.with_no_client_auth(),
        };
        config.enable_sni = self.sni;
        if self.direct {
            config.alpn_protocols = vec![b"postgresql".to_vec()];
        }
        Ok(Arc::new(config))
    }

    fn attempt_config(&self, tls: bool) -> tokio_postgres::Config {
        let mut c = self.config.clone();
        c.ssl_mode(match (tls, self.mode) {
            (false, _) => DriverSslMode::Disable,
            // `prefer`: the server may answer that it has no TLS; go on in plain text then.
            (true, SslMode::Prefer) => DriverSslMode::Prefer,
            (true, _) => DriverSslMode::Require,
        });
        c
    }

    fn connector(&self, tls: bool) -> Result<MakeRustls, PgConnError> {
        let roots = match &self.roots {
            Some(Roots::File(path)) => format!("a CA in sslrootcert {}", path.display()),
            _ => "a CA of the bundled public roots (no sslrootcert file given)".to_owned(),
        };
        Ok(MakeRustls {
            config: if tls { Some(self.tls_config()?) } else { None },
            why: Arc::new(Why {
                mode: self.mode,
                roots,
            }),
        })
    }

    /// Connects (blocking), trying plain and TLS in the order `sslmode` says.
    pub fn connect_blocking(&self) -> Result<postgres::Client, PgConnError> {
        let mut failures = Vec::new();
        for &tls in self.attempts() {
            let config = postgres::Config::from(self.attempt_config(tls));
            match config.connect(self.connector(tls)?) {
                Ok(client) => return Ok(client),
                Err(e) => {
                    failures.push((tls, describe(&e)));
                    if is_final(&e) {
                        break;
                    }
                }
            }
        }
        Err(self.failed(failures))
    }

    /// Connects (async), trying plain and TLS in the order `sslmode` says. The caller drives
    /// the returned connection (usually with `tokio::spawn`).
    pub async fn connect(&self) -> Result<(tokio_postgres::Client, PgConnection), PgConnError> {
        let mut failures = Vec::new();
        for &tls in self.attempts() {
            match self.attempt_config(tls).connect(self.connector(tls)?).await {
                Ok(pair) => return Ok(pair),
                Err(e) => {
                    failures.push((tls, describe(&e)));
                    if is_final(&e) {
                        break;
                    }
                }
            }
        }
        Err(self.failed(failures))
    }

    fn failed(&self, failures: Vec<(bool, String)>) -> PgConnError {
        if let [(_, only)] = failures.as_slice() {
            return PgConnError(only.clone());
        }
        if failures.windows(2).all(|w| w[0].1 == w[1].1) {
            let why = failures.into_iter().next().map(|f| f.1).unwrap_or_default();
            return PgConnError(format!(
                "sslmode={}: with and without TLS: {why}",
                self.mode.name()
            ));
        }
        let parts: Vec<String> = failures
            .into_iter()
            .map(|(tls, why)| format!("{}: {why}", if tls { "over TLS" } else { "without TLS" }))
            .collect();
        PgConnError(format!(
            "sslmode={}: {}",
            self.mode.name(),
            parts.join("; ")
        ))
    }
}

/// Whether a URI has an `@` after the `/` that ends its host part, as when a password holds a
/// raw `/`.
fn raw_slash_in_userinfo(uri: &str) -> bool {
    if !ttn_telemetry_core::is_postgres_uri(uri) {
        return false;
    }
    let rest = uri.split_once("://").map_or("", |(_, r)| r);
    rest.find(['@', '/'])
        .is_some_and(|i| rest.as_bytes()[i] == b'/' && rest[i..].contains('@'))
}

/// Whether another attempt (with or without TLS) would fail the same way: a wrong password, a
/// database that does not exist, or no permission. pgx stops on these too.
fn is_final(e: &tokio_postgres::Error) -> bool {
    e.as_db_error()
        .is_some_and(|db| matches!(db.code().code(), "28P01" | "3D000" | "42501"))
}

/// A live connection made by [`PgTarget::connect`], to be driven by the caller.
pub type PgConnection = tokio_postgres::Connection<tokio_postgres::Socket, TlsStream>;

fn load_roots(roots: &Roots) -> Result<RootCertStore, PgConnError> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::System => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Roots::File(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| PgConnError(format!("sslrootcert {}: {e}", path.display())))?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(PgConnError(format!(
                    "sslrootcert {}: holds no usable PEM CA certificate",
                    path.display()
                )));
            }
        }
    }
    Ok(store)
}

/// The server's own message (`relation "end_devices" does not exist (42P01)`) when there is
/// one, else the driver's message with its causes (`error connecting to server: Connection
/// refused`).
pub fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    let mut s = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cause = c.source();
    }
    s
}

/// Checks the server certificate as `sslmode` asks, and explains a refusal in words an
/// operator can act on.
#[derive(Debug)]
struct Verifier {
    check: Check,
    roots: Option<Arc<RootCertStore>>,
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(roots) = self.roots.as_ref().filter(|_| self.check != Check::None) else {
            return Ok(ServerCertVerified::assertion());
        };
        let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            roots,
            intermediates,
            now,
            self.algs.all,
        )?;
        if self.check == Check::Full {
            rustls::client::verify_server_name(&cert, server_name)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// What a handshake failure is explained with: the mode and where trusted roots come from.
#[derive(Debug)]
struct Why {
    mode: SslMode,
    roots: String,
}

/// Rewords a failed handshake so that the operator learns what to fix.
fn explain(e: io::Error, why: &Why, host: &str) -> io::Error {
    let Some(tls) = e.get_ref().and_then(|r| r.downcast_ref::<rustls::Error>()) else {
        return e;
    };
    let text = match tls {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => format!(
            "the server certificate is not signed by {} (sslmode={})",
            why.roots,
            why.mode.name()
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!(
            "the server certificate is not valid for the host name {host:?} (sslmode=verify-full checks it; connect by a name the certificate lists)"
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => "the server certificate has expired".to_owned(),
        other => format!("TLS handshake failed: {other}"),
    };
    io::Error::new(e.kind(), text)
}

/// `tokio-postgres`'s TLS hook, backed by rustls. Without a configuration (a plain attempt) it
/// is never asked for TLS.
#[derive(Clone)]
struct MakeRustls {
    config: Option<Arc<ClientConfig>>,
    why: Arc<Why>,
}

impl<S> MakeTlsConnect<S> for MakeRustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = TlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, io::Error> {
        // tokio-postgres makes a connector for every host, even with `sslmode=disable` and for
        // Unix sockets (an empty domain); only a handshake needs the configuration and a name.
        Ok(RustlsConnect {
            config: self.config.clone(),
            name: ServerName::try_from(domain.to_owned()).ok(),
            why: self.why.clone(),
            host: domain.to_owned(),
        })
    }
}

#[doc(hidden)]
#[derive(Debug)]
pub struct RustlsConnect {
    config: Option<Arc<ClientConfig>>,
    name: Option<ServerName<'static>>,
    why: Arc<Why>,
    host: String,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = TlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let config = self
                .config
                .ok_or_else(|| io::Error::other("TLS is not used on this attempt"))?;
            let name = self.name.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "{:?} is not a host name or IP address TLS can check",
                        self.host
                    ),
                )
            })?;
            let connector = tokio_rustls::TlsConnector::from(config);
            match connector.connect(name, stream).await {
                Ok(s) => Ok(TlsStream(Box::new(s))),
                Err(e) => Err(explain(e, &self.why, &self.host)),
            }
        })
    }
}

/// A TLS stream to the server.
pub struct TlsStream<S = tokio_postgres::Socket>(Box<tokio_rustls::client::TlsStream<S>>);

impl<S> fmt::Debug for TlsStream<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsStream")
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for TlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        let (_, conn) = self.0.get_ref();
        match conn.peer_certificates().and_then(|c| c.first()) {
            Some(cert) => ChannelBinding::tls_server_end_point(end_point_hash(cert)),
            None => ChannelBinding::none(),
        }
    }
}

/// RFC 5929 `tls-server-end-point`: the certificate hashed with its signature's hash, SHA-256
/// when that is MD5 or SHA-1 (or not recognised).
fn end_point_hash(cert: &[u8]) -> Vec<u8> {
    // DER object identifiers of the signature algorithms that hash with SHA-384 / SHA-512.
    const SHA384: &[&[u8]] = &[
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c], // sha384WithRSAEncryption
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03],       // ecdsa-with-SHA384
    ];
    const SHA512: &[&[u8]] = &[
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d], // sha512WithRSAEncryption
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04],       // ecdsa-with-SHA512
    ];
    let oid = signature_oid(cert).unwrap_or_default();
    if SHA384.contains(&oid) {
        sha2::Sha384::digest(cert).to_vec()
    } else if SHA512.contains(&oid) {
        sha2::Sha512::digest(cert).to_vec()
    } else {
        sha2::Sha256::digest(cert).to_vec()
    }
}

/// One DER element: (tag, content, rest).
fn der(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, b) = b.split_first()?;
    let (&first, mut b) = b.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || b.len() < n {
            return None;
        }
        let (len, rest) = b.split_at(n);
        b = rest;
        len.iter()
            .fold(0usize, |acc, &x| (acc << 8) | usize::from(x))
    };
    if b.len() < len {
        return None;
    }
    let (content, rest) = b.split_at(len);
    Some((tag, content, rest))
}

/// The signature algorithm OID of a certificate (`Certificate ::= SEQUENCE { tbs,
/// signatureAlgorithm SEQUENCE { OID, … }, signature }`).
fn signature_oid(cert: &[u8]) -> Option<&[u8]> {
    let (_, body, _) = der(cert).filter(|(t, _, _)| *t == 0x30)?;
    let (_, _tbs, rest) = der(body)?;
    let (_, alg, _) = der(rest).filter(|(t, _, _)| *t == 0x30)?;
    let (_, oid, _) = der(alg).filter(|(t, _, _)| *t == 0x06)?;
    Some(oid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_files_are_read_from_both_forms() {
        for s in [
            "postgresql://u:pw@db:5433/is?sslmode=verify-full&sslrootcert=/ca.pem",
            "host=db port=5433 user=u password=pw dbname=is sslmode=verify-full sslrootcert=/ca.pem",
        ] {
            let t = PgTarget::parse(s).unwrap();
            assert_eq!(t.mode, SslMode::VerifyFull, "{s}");
            assert_eq!(t.roots, Some(Roots::File("/ca.pem".into())));
            assert_eq!(t.check(), Check::Full);
            assert_eq!(t.config.get_dbname(), Some("is"));
            assert_eq!(t.config.get_ports(), [5433]);
            assert_eq!(t.config.get_password(), Some(&b"pw"[..]));
            assert!(!t.shown().contains("pw@") && !t.shown().contains("=pw"));
        }
    }

    #[test]
    fn libpq_rules_for_require_and_defaults() {
        let t = PgTarget::parse("host=h").unwrap();
        assert_eq!((t.mode, t.check()), (SslMode::Prefer, Check::None));
        assert_eq!(t.attempts(), [true, false]);
        let t = PgTarget::parse("host=h sslmode=require").unwrap();
        assert_eq!(t.check(), Check::None);
        let t = PgTarget::parse("host=h sslmode=require sslrootcert=/ca").unwrap();
        assert_eq!(t.check(), Check::Chain);
        let t = PgTarget::parse("host=h sslmode=verify-ca").unwrap();
        assert_eq!((t.check(), t.roots), (Check::Chain, Some(Roots::System)));
        let t = PgTarget::parse("host=h sslrootcert=system").unwrap();
        assert_eq!(t.mode, SslMode::VerifyFull);
        let t = PgTarget::parse("postgres://h/d?sslmode=allow").unwrap();
        assert_eq!(t.attempts(), [false, true]);
        let t = PgTarget::parse("postgres://h/d?ssl=true").unwrap();
        assert_eq!(t.mode, SslMode::Require);
    }

    #[test]
    fn unknown_keys_become_server_settings() {
        let t = PgTarget::parse(
            "host=h options='-c a=1' search_path='my schema' fallback_application_name=x",
        )
        .unwrap();
        assert_eq!(
            t.config.get_options(),
            Some("-c a=1 -c search_path=my\\ schema")
        );
        assert_eq!(t.config.get_application_name(), Some("x"));
    }

    #[test]
    fn errors_name_the_key_never_the_password() {
        let cases = [
            ("host=h password=s3cret sslmode=bogus", "sslmode \"bogus\""),
            (
                "host=h password=s3cret sslpassword=x",
                "\"sslpassword\" is not supported",
            ),
            (
                "host=h password=s3cret passfile=/x",
                "\"passfile\" is not supported",
            ),
            ("host=h password=s3cret sslcert=/c", "sslcert and sslkey"),
            ("host=h password=s3cret port=x", "port"),
            ("host=h password='s3cret", "not closed"),
            ("postgres://u:s3cret@h:5x/d", "port"),
            ("postgres://u:s3/cret@h/d", "write it as %2F"),
        ];
        for (s, want) in cases {
            let e = PgTarget::parse(s).unwrap_err().to_string();
            assert!(e.contains(want), "{s}: {e}");
            assert!(!e.contains("s3cret") && !e.contains("cret"), "{s}: {e}");
        }
    }

    #[test]
    fn end_point_hash_follows_the_signature_hash() {
        // Certificate SEQUENCE { tbs SEQUENCE {}, alg SEQUENCE { OID ecdsa-with-SHA384 } }.
        let cert = [
            0x30, 0x0e, 0x30, 0x00, 0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04,
            0x03, 0x03,
        ];
        assert_eq!(end_point_hash(&cert).len(), 48);
        let mut sha256 = cert;
        sha256[15] = 0x02;
        assert_eq!(end_point_hash(&sha256).len(), 32);
        assert_eq!(end_point_hash(b"junk").len(), 32);
    }
}
