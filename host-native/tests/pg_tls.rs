//! Production databases over TLS (issue 10): a throwaway PostgreSQL cluster that this test
//! starts with `ssl=on`, a CA and server certificate made here, and a `pg_hba.conf` that only
//! allows TLS (`hostssl`). libpq's `sslmode` rules are checked through the real binary and
//! through the collector's store.
//!
//! The server certificate names `localhost` only, so connecting by `127.0.0.1` is a wrong host
//! name for `verify-full` (and fine for `verify-ca`, which does not check names).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use ttn_lw_telemetry::pgconn::PgTarget;

const BIN: &str = env!("CARGO_BIN_EXE_ttn-lw-telemetry");
const PASSWORD: &str = "Tls-Pw/5521#x";
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// The binaries of the newest installed PostgreSQL server.
fn pg_bin() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    found.retain(|p| p.join("initdb").exists());
    found.sort();
    found.pop().unwrap_or_else(|| PathBuf::from(PG_BIN))
}

/// Runs a PostgreSQL program as the `postgres` user when we are root (the server refuses to
/// run as root), else as ourselves.
fn as_postgres(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn chown_postgres(path: &Path) {
    if is_root() {
        let ok = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(path)
            .status()
            .unwrap()
            .success();
        assert!(ok, "chown postgres {}", path.display());
    }
}

/// PEM files of a CA, and of certificates it issued.
struct Pki {
    ca: PathBuf,
    other_ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn ca(name: &str) -> (CertificateParams, KeyPair, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let pem = params.self_signed(&key).unwrap().pem();
    (params, key, pem)
}

fn make_pki(dir: &Path) -> Pki {
    let (ca_params, ca_key, ca_pem) = ca("ttn-lw-telemetry test CA");
    let (_, _, other_pem) = ca("another CA");
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().unwrap();
    let mut server = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    server
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let server_pem = server.signed_by(&server_key, &issuer).unwrap().pem();

    let client_key = KeyPair::generate().unwrap();
    let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
    client
        .distinguished_name
        .push(DnType::CommonName, "certuser");
    let client_pem = client.signed_by(&client_key, &issuer).unwrap().pem();

    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let pki = Pki {
        ca: write("ca.pem", &ca_pem),
        other_ca: write("other-ca.pem", &other_pem),
        server_cert: write("server.crt", &server_pem),
        server_key: write("server.key", &server_key.serialize_pem()),
        client_cert: write("client.crt", &client_pem),
        client_key: write("client.key", &client_key.serialize_pem()),
    };
    use std::os::unix::fs::PermissionsExt;
    for key in [&pki.server_key, &pki.client_key] {
        std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    pki
}

/// A PostgreSQL cluster of this test's own, stopped and removed on drop.
struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    pki: Pki,
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let bin = pg_bin();
        assert!(
            bin.join("initdb").exists(),
            "PostgreSQL server binaries are needed (apt-get install postgresql)"
        );
        let pki = make_pki(dir.path());
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        chown_postgres(dir.path());
        let out = as_postgres(&bin.join("initdb"))
            .args(["-D"])
            .arg(&data)
            .args(["-U", "postgres", "--auth-local=trust", "--auth-host=reject"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb: {}", text(&out.stderr));
        // TLS only: a certificate user, and everyone else with a password (SCRAM).
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\n\
             hostssl all certuser 127.0.0.1/32 cert\n\
             hostssl all all 127.0.0.1/32 scram-sha-256\n",
        )
        .unwrap();
        chown_postgres(&data);
        let port = free_port();
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={sock} \
             -c ssl=on -c ssl_cert_file={cert} -c ssl_key_file={key} -c ssl_ca_file={ca}",
            sock = dir.path().display(),
            cert = pki.server_cert.display(),
            key = pki.server_key.display(),
            ca = pki.ca.display(),
        );
        let out = as_postgres(&bin.join("pg_ctl"))
            .args(["-D"])
            .arg(&data)
            .args(["-l"])
            .arg(dir.path().join("log"))
            .args(["-o", &options, "-w", "start"])
            .output()
            .unwrap();
        let cluster = Cluster {
            dir,
            bin,
            port,
            pki,
        };
        assert!(
            out.status.success(),
            "pg_ctl start: {} {}",
            text(&out.stderr),
            std::fs::read_to_string(cluster.dir.path().join("log")).unwrap_or_default()
        );
        cluster.psql("CREATE ROLE certuser LOGIN");
        cluster.psql("CREATE DATABASE ttn_lorawan");
        cluster.psql_db("ttn_lorawan", include_str!("../sql/is-schema.postgres.sql"));
        cluster.psql_db(
            "ttn_lorawan",
            "GRANT SELECT ON ALL TABLES IN SCHEMA public TO certuser;",
        );
        cluster
    }

    fn psql(&self, sql: &str) {
        self.psql_db("postgres", sql);
    }

    /// Runs SQL over the Unix socket (trusted), as the set-up does.
    fn psql_db(&self, db: &str, sql: &str) {
        let out = as_postgres(&self.bin.join("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.dir.path())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "psql: {}", text(&out.stderr));
    }

    /// A URI to this cluster by `host`, with the given query.
    fn uri(&self, host: &str, query: &str) -> String {
        format!(
            "postgresql://postgres:{}@{host}:{}/ttn_lorawan?{query}",
            PASSWORD.replace('/', "%2F").replace('#', "%23"),
            self.port
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .args(["-D"])
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `ttn-lw-telemetry preview --is.database-uri URI` in a directory of its own.
fn preview(uri: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    Command::new(BIN)
        .args(["preview", "--is.database-uri", uri])
        .current_dir(dir.path())
        .env_clear()
        .env("HOME", dir.path())
        .output()
        .unwrap()
}

fn assert_previews(uri: &str) {
    let o = preview(uri);
    let err = text(&o.stderr);
    assert!(o.status.success(), "{uri}: {err}");
    assert!(text(&o.stdout).contains("\"entities_count\""), "{uri}");
    assert!(
        !err.contains("Tls-Pw") && !text(&o.stdout).contains("Tls-Pw"),
        "{err}"
    );
}

fn assert_refused(uri: &str, why: &str) {
    let o = preview(uri);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{uri}: {err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("connecting failed"), "{err}");
    assert!(err.contains(why), "{uri}: {err:?} lacks {why:?}");
    assert!(!err.contains("Tls-Pw"), "{err}");
}

#[test]
fn sslmodes_follow_libpq_against_a_tls_only_server() {
    let c = Cluster::start();
    let ca = c.pki.ca.display().to_string();
    let other = c.pki.other_ca.display().to_string();

    // require: encrypted, the certificate is not checked (its CA is unknown here).
    assert_previews(&c.uri("127.0.0.1", "sslmode=require"));
    // verify-full with the right root certificate and the name the certificate lists.
    assert_previews(&c.uri(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    ));
    // verify-ca checks the chain, not the name: 127.0.0.1 is fine.
    assert_previews(&c.uri("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={ca}")));
    // prefer tries TLS first; allow tries plain first, is refused, then uses TLS.
    assert_previews(&c.uri("127.0.0.1", "sslmode=prefer"));
    assert_previews(&c.uri("127.0.0.1", "sslmode=allow"));

    // verify-full with another CA's root certificate, or by a name the certificate lacks.
    assert_refused(
        &c.uri(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={other}"),
        ),
        &format!(
            "the server certificate is not signed by a CA in sslrootcert {other} (sslmode=verify-full)"
        ),
    );
    assert_refused(
        &c.uri(
            "127.0.0.1",
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        ),
        "the server certificate is not valid for the host name \"127.0.0.1\"",
    );
    // libpq's rule: require with a root certificate verifies the chain like verify-ca.
    assert_refused(
        &c.uri("127.0.0.1", &format!("sslmode=require&sslrootcert={other}")),
        &format!("not signed by a CA in sslrootcert {other} (sslmode=require)"),
    );
    // disable: the hostssl-only server says no.
    assert_refused(
        &c.uri("127.0.0.1", "sslmode=disable"),
        "no pg_hba.conf entry for host \"127.0.0.1\", user \"postgres\", database \"ttn_lorawan\", no encryption (28000)",
    );
}

#[test]
fn conninfo_client_certificates_and_channel_binding() {
    let c = Cluster::start();
    let ca = c.pki.ca.display().to_string();
    // key=value conninfo, quoted password with a space-free but `/`-and-`#` value, the TLS name
    // given by `host` while `hostaddr` says where to connect.
    let conninfo = format!(
        "host=localhost hostaddr=127.0.0.1 port={} dbname=ttn_lorawan user=postgres password='{PASSWORD}' sslmode=verify-full sslrootcert='{ca}'",
        c.port
    );
    assert_previews(&conninfo);
    // A Unix socket (no TLS there, as in libpq): the default `prefer` goes on in plain text.
    assert_previews(&format!(
        "host={} port={} dbname=ttn_lorawan user=postgres",
        c.dir.path().display(),
        c.port
    ));

    // SCRAM with channel binding required: our tls-server-end-point hash must match the server's.
    let target = PgTarget::parse(&format!("{conninfo} channel_binding=require")).unwrap();
    let mut client = target.connect_blocking().unwrap();
    let row = client
        .query_one(
            "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .unwrap();
    assert!(row.get::<_, bool>(0));
    assert!(row.get::<_, String>(1).starts_with("TLS"));

    // A client certificate (`cert` authentication): no password at all.
    let with_cert = format!(
        "postgresql://certuser@localhost:{}/ttn_lorawan?sslmode=verify-full&sslrootcert={ca}&sslcert={}&sslkey={}",
        c.port,
        c.pki.client_cert.display(),
        c.pki.client_key.display()
    );
    assert_previews(&with_cert);
    let without = format!(
        "postgresql://certuser@localhost:{}/ttn_lorawan?sslmode=verify-full&sslrootcert={ca}",
        c.port
    );
    assert_refused(&without, "requires a valid client certificate");
}

#[test]
fn the_collector_stores_over_tls() {
    let c = Cluster::start();
    c.psql("CREATE DATABASE collector;");
    let uri = format!(
        "host=localhost hostaddr=127.0.0.1 port={} dbname=collector user=postgres password='{PASSWORD}' sslmode=verify-full sslrootcert={}",
        c.port,
        c.pki.ca.display()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = ttn_lw_telemetry::collect::store::Store::open(Some(&uri))
            .await
            .unwrap();
        drop(store);
        let wrong = uri.replace("host=localhost", "host=127.0.0.1");
        let err = ttn_lw_telemetry::collect::store::Store::open(Some(&wrong))
            .await
            .unwrap_err();
        let shown = format!("{err:#}");
        assert!(shown.contains("not valid for the host name"), "{shown}");
        assert!(!shown.contains("Tls-Pw"), "{shown}");
    });
}
