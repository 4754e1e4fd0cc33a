//! The deployment key (issue 14 §2, `docs/signing.md`): where it lives, how replicas share it,
//! and the signed requests of `collected`, `forget` and `rotate-key`.
//!
//! The key is chosen, in this order:
//! 1. `telemetry.signing-key-file`, when set: a PEM PKCS#8 Ed25519 key the operator provides
//!    (`openssl genpkey -algorithm ed25519`). It must exist; the agent never writes it.
//! 2. With Redis coordination (the same Redis the schedule uses): the key stored at
//!    `<namespace>:signing-key`, where `<namespace>` is the deployment's schedule namespace
//!    ([`crate::daemon::redis_namespace`]). The first replica stores its key with `SET NX`;
//!    the others read it, so every replica signs with one key. Each replica also keeps the
//!    shared key in its state directory, and offers that copy first, so a Redis that lost its
//!    data gets the same key back from the first replica that starts.
//! 3. Else `<telemetry.state-dir>/signing-key.pem`, created on first start.
//!
//! A key file the agent writes is created with mode 0600, atomically: the key is written to a
//! temporary file in the same directory, flushed, then hard-linked to its name, which fails if
//! the name exists, so two processes starting at once end up reading one key, never
//! overwriting each other's. The seed comes from the operating system's CSPRNG (`getrandom`).
//! The private key is never printed or logged; the key id (the public key) is.
//!
//! Keys are loaded when the agent starts (or `send` runs) with telemetry on and not local-only,
//! and `run` loads the key again before each report ([`KeySource`]), so a key rotated by another
//! replica is used from the next report on.
//! When the key is shared through Redis and Redis cannot be reached then, the replica signs with
//! its copy of the shared key if it has one, and otherwise sends unsigned (with a warning):
//! the reference agent's behaviour, which a collector that pinned the key refuses with 401 and
//! one that did not accepts. It never makes a key of its own then, which would split the
//! replicas. `collected`, `forget` and `rotate-key` need the key itself and fail instead.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use ttn_telemetry_core::{Config, SigningKey};

use crate::schedule::redis::RedisTarget;

/// File name of the agent's own key in `telemetry.state-dir`.
pub const KEY_FILE: &str = "signing-key.pem";

/// Suffix of the shared key's Redis key, after the deployment's namespace.
pub const REDIS_KEY_SUFFIX: &str = ":signing-key";

/// The deployment key `config` names (see the module docs), created when there is none.
pub fn deployment_key(config: &Config) -> anyhow::Result<SigningKey> {
    match where_key(config)? {
        KeyHome::File(path) => read_key_file(&path).context("reading telemetry.signing-key-file"),
        KeyHome::Local(dir) => local_key(&dir),
        KeyHome::Redis(target, key, dir) => shared_key(&target, &key, &dir),
    }
}

/// The key of a deployment for delivery: `None` when telemetry is off or local-only (nothing
/// is sent, so no key is made), or when the key is shared through a Redis that cannot be
/// reached and this replica has no copy yet (see the module docs).
pub fn for_delivery(config: &Config) -> anyhow::Result<Option<SigningKey>> {
    if config.off_reason().is_some() || config.local_only() {
        return Ok(None);
    }
    let KeyHome::Redis(target, key, dir) = where_key(config)? else {
        return deployment_key(config).map(Some);
    };
    match shared_key(&target, &key, &dir) {
        Ok(k) => Ok(Some(k)),
        Err(e) => {
            let copy = dir.join(KEY_FILE);
            if copy.exists() {
                tracing::warn!(
                    "{e:#}: signing with this replica's copy of the shared key ({})",
                    copy.display()
                );
                read_key_file(&copy).map(Some)
            } else {
                tracing::warn!(
                    "{e:#}: this replica has no copy of the shared key yet, so its reports go \
                     unsigned until Redis answers (a collector that pinned the key refuses them)"
                );
                Ok(None)
            }
        }
    }
}

/// The deployment key that already exists (`collected`, `forget`, `rotate-key`): never creates
/// one, since a new key is pinned for nothing.
pub fn existing_key(config: &Config) -> anyhow::Result<SigningKey> {
    let none = || {
        anyhow::anyhow!(
            "this deployment has no signing key yet: the agent makes one when it first sends a \
             report (or set telemetry.signing-key-file)"
        )
    };
    match where_key(config)? {
        KeyHome::File(path) => read_key_file(&path).context("reading telemetry.signing-key-file"),
        KeyHome::Local(dir) => {
            let path = dir.join(KEY_FILE);
            if !path.exists() {
                return Err(none());
            }
            read_key_file(&path)
        }
        KeyHome::Redis(target, key, _) => {
            let stored = redis_get(&target, &key)?.ok_or_else(none)?;
            SigningKey::from_pkcs8_pem(&stored)
                .map_err(|e| anyhow::anyhow!("the signing key in Redis at {key}: {e}"))
        }
    }
}

/// Makes `key` the deployment key where `config` keeps it (after `rotate-key`): the key file
/// (replaced atomically, mode 0600), or Redis and this replica's copy.
pub fn replace_key(config: &Config, key: &SigningKey) -> anyhow::Result<()> {
    match where_key(config)? {
        KeyHome::File(path) => replace_key_file(&path, key),
        KeyHome::Local(dir) => replace_key_file(&dir.join(KEY_FILE), key),
        KeyHome::Redis(target, redis_key, dir) => {
            let mut conn = target.connect()?;
            let _: () = redis::cmd("SET")
                .arg(&redis_key)
                .arg(key.to_pkcs8_pem())
                .query(&mut conn)
                .map_err(|e| {
                    anyhow::anyhow!("storing the new signing key in Redis: {:?}", e.kind())
                })?;
            replace_key_file(&dir.join(KEY_FILE), key)
        }
    }
}

/// Loads the deployment key again before each report (`run`): a key rotated by another replica
/// (`rotate-key`) or shared through a Redis that was down at start-up is picked up by the next
/// report, without a restart.
#[derive(Clone)]
pub struct KeySource(std::sync::Arc<dyn Fn() -> anyhow::Result<Option<SigningKey>> + Send + Sync>);

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeySource")
    }
}

impl KeySource {
    /// The key [`for_delivery`] gives for `config`, each time it is asked.
    pub fn of_config(config: Config) -> KeySource {
        KeySource(std::sync::Arc::new(move || for_delivery(&config)))
    }

    /// Any loader (tests).
    pub fn new(f: impl Fn() -> anyhow::Result<Option<SigningKey>> + Send + Sync + 'static) -> Self {
        KeySource(std::sync::Arc::new(f))
    }

    /// The key now.
    pub fn load(&self) -> anyhow::Result<Option<SigningKey>> {
        (self.0)()
    }
}

/// Where a deployment's key lives.
enum KeyHome {
    /// `telemetry.signing-key-file`.
    File(PathBuf),
    /// `<state-dir>/signing-key.pem`.
    Local(PathBuf),
    /// Shared in Redis at the key given, with a copy in the state dir.
    Redis(RedisTarget, String, PathBuf),
}

fn where_key(config: &Config) -> anyhow::Result<KeyHome> {
    if !config.signing_key_file.is_empty() {
        return Ok(KeyHome::File(PathBuf::from(&config.signing_key_file)));
    }
    let dir = PathBuf::from(&config.state_dir);
    Ok(match config.redis() {
        None => KeyHome::Local(dir),
        Some(r) => KeyHome::Redis(
            RedisTarget::from_config(&r.address, &r.password, r.database),
            format!(
                "{}{REDIS_KEY_SUFFIX}",
                crate::daemon::redis_namespace(config)?
            ),
            dir,
        ),
    })
}

fn redis_get(target: &RedisTarget, key: &str) -> anyhow::Result<Option<String>> {
    let mut conn = target
        .connect()
        .context("reading the deployment's signing key from Redis")?;
    redis::cmd("GET")
        .arg(key)
        .query(&mut conn)
        .map_err(|e| anyhow::anyhow!("reading the signing key from Redis: {:?}", e.kind()))
}

/// Writes `key` to `path` in place of what is there: a 0600 temporary file renamed over it.
fn replace_key_file(path: &Path, key: &SigningKey) -> anyhow::Result<()> {
    let next = path.with_extension("pem.next");
    let _ = std::fs::remove_file(&next);
    if !create_key_file(&next, key)? {
        anyhow::bail!("{} appeared while writing it", next.display());
    }
    std::fs::rename(&next, path)
        .with_context(|| format!("replacing the signing key {}", path.display()))
}

/// Reads a PEM key file.
pub fn read_key_file(path: &Path) -> anyhow::Result<SigningKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the signing key {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %path.display(),
                "the signing key file is readable by other users: chmod 600 it"
            );
        }
    }
    SigningKey::from_pkcs8_pem(&text)
        .map_err(|e| anyhow::anyhow!("the signing key {}: {e}", path.display()))
}

/// The key in `dir`, created when there is none.
pub fn local_key(dir: &Path) -> anyhow::Result<SigningKey> {
    let path = dir.join(KEY_FILE);
    if path.exists() {
        return read_key_file(&path);
    }
    let key = SigningKey::from_seed(&random_seed()?);
    match create_key_file(&path, &key)? {
        true => Ok(key),
        // Another process created it first: use that one.
        false => read_key_file(&path),
    }
}

/// The key shared through Redis at `redis_key`, offering this replica's copy in `dir` (or a new
/// key) when Redis has none, and keeping the shared one in `dir`.
pub fn shared_key(target: &RedisTarget, redis_key: &str, dir: &Path) -> anyhow::Result<SigningKey> {
    let path = dir.join(KEY_FILE);
    let mine = if path.exists() {
        Some(read_key_file(&path)?)
    } else {
        None
    };
    let offer = match &mine {
        Some(k) => k.clone(),
        None => SigningKey::from_seed(&random_seed()?),
    };
    let mut conn = target
        .connect()
        .context("sharing the deployment's signing key through Redis")?;
    let _: Option<String> = redis::cmd("SET")
        .arg(redis_key)
        .arg(offer.to_pkcs8_pem())
        .arg("NX")
        .query(&mut conn)
        .map_err(|e| anyhow::anyhow!("storing the signing key in Redis: {:?}", e.kind()))?;
    let stored: Option<String> = redis::cmd("GET")
        .arg(redis_key)
        .query(&mut conn)
        .map_err(|e| anyhow::anyhow!("reading the signing key from Redis: {:?}", e.kind()))?;
    let shared = SigningKey::from_pkcs8_pem(stored.as_deref().unwrap_or_default())
        .map_err(|e| anyhow::anyhow!("the signing key in Redis at {redis_key}: {e}"))?;
    if mine.as_ref().map(SigningKey::seed) != Some(shared.seed()) {
        if mine.is_some() {
            std::fs::remove_file(&path)
                .with_context(|| format!("replacing {} by the shared key", path.display()))?;
        }
        create_key_file(&path, &shared)?;
    }
    Ok(shared)
}

/// 32 bytes from the operating system's CSPRNG.
fn random_seed() -> anyhow::Result<[u8; 32]> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness for a key: {e}"))?;
    Ok(seed)
}

/// Writes `key` to `path` with mode 0600, atomically, unless `path` exists; `false` when it did.
pub fn create_key_file(path: &Path, key: &SigningKey) -> anyhow::Result<bool> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the state directory {}", dir.display()))?;
    let tmp: PathBuf = dir.join(format!(
        ".{KEY_FILE}.{}.{:016x}",
        std::process::id(),
        u64::from_le_bytes(random_seed()?[..8].try_into().unwrap_or_default())
    ));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let written = (|| -> std::io::Result<bool> {
        let mut f = opts.open(&tmp)?;
        f.write_all(key.to_pkcs8_pem().as_bytes())?;
        f.sync_all()?;
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    })();
    let _ = std::fs::remove_file(&tmp);
    written.with_context(|| format!("writing the signing key {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_key_is_made_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let a = local_key(dir.path()).unwrap();
        let b = local_key(dir.path()).unwrap();
        assert_eq!(a.keyid(), b.keyid());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [KEY_FILE]);
        // A second key for the same path is not written over the first.
        let other = SigningKey::from_seed(&[1; 32]);
        assert!(!create_key_file(&dir.path().join(KEY_FILE), &other).unwrap());
        assert_eq!(local_key(dir.path()).unwrap().keyid(), a.keyid());
    }
}
