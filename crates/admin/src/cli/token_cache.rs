//! The admin CLI's token cache: one private JSON file (mode 0600, in a directory made 0700)
//! holding, per cloud URL and tenant, the access token of the last browser sign-in, its expiry
//! and its refresh token, so that each command does not sign in again. Default
//! `$XDG_CACHE_HOME/passthru/admin-tokens.json`, else `$HOME/.cache/passthru/admin-tokens.json`;
//! `PASSTHRU_TOKEN_CACHE` names another file. A lock file next to it (`...json.lock`) keeps
//! two commands from redeeming one refresh token twice (the cloud would take the second use
//! for a theft and revoke the sign-in). Written whole to a new file then renamed, so a reader
//! never sees half of it.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use passthru_client::{AdminTokens, ClientError};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Environment variable naming the token cache file (instead of the default).
pub const TOKEN_CACHE_ENV: &str = "PASSTHRU_TOKEN_CACHE";
/// Mode of the cache file (and its lock file).
const FILE_MODE: u32 = 0o600;
/// Mode of the directories made for it.
const DIR_MODE: u32 = 0o700;
/// Seconds before its expiry an access token is no longer used (clocks differ, and the
/// command's requests take time).
pub(super) const EXPIRY_MARGIN: i64 = 60;

/// Where the cache lives: `PASSTHRU_TOKEN_CACHE`, else `$XDG_CACHE_HOME/passthru/...` (when
/// that is an absolute path, as the XDG specification requires), else
/// `$HOME/.cache/passthru/...`; `None` when none of them is set.
pub(super) fn cache_path(var: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let set = |name: &str| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(p) = set(TOKEN_CACHE_ENV) {
        return Some(p);
    }
    let file = Path::new("passthru").join("admin-tokens.json");
    if let Some(xdg) = set("XDG_CACHE_HOME").filter(|p| p.is_absolute()) {
        return Some(xdg.join(file));
    }
    set("HOME").map(|home| home.join(".cache").join(file))
}

/// One cached sign-in. `Debug` shows no token.
#[derive(Clone, Serialize, Deserialize)]
pub(super) struct Entry {
    /// The cloud's base URL, as the client normalises it.
    pub cloud: String,
    /// The tenant as given (lower case).
    pub tenant: String,
    pub access_token: Zeroizing<String>,
    /// When the access token expires (Unix seconds).
    pub expires_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("cloud", &self.cloud)
            .field("tenant", &self.tenant)
            .field("expires_at", &self.expires_at)
            .field("refresh_token", &self.refresh_token.is_some())
            .finish_non_exhaustive()
    }
}

impl Entry {
    /// The entry for `tokens` just received (at `now`). A refresh answer without a new
    /// refresh token keeps `previous` (the cloud did not rotate it).
    pub(super) fn new(
        cloud: &str,
        tenant: &str,
        tokens: AdminTokens,
        previous: Option<Zeroizing<String>>,
        now: i64,
    ) -> Entry {
        let lifetime = i64::try_from(tokens.expires_in).unwrap_or(i64::MAX);
        Entry {
            cloud: cloud.to_string(),
            tenant: tenant.to_ascii_lowercase(),
            access_token: tokens.access_token,
            expires_at: now.saturating_add(lifetime),
            refresh_token: tokens.refresh_token.or(previous),
        }
    }

    /// Whether the access token may still be used at `now`.
    pub(super) fn access_valid(&self, now: i64) -> bool {
        now < self.expires_at.saturating_sub(EXPIRY_MARGIN)
    }

    fn is(&self, cloud: &str, tenant: &str) -> bool {
        self.cloud == cloud && self.tenant.eq_ignore_ascii_case(tenant)
    }
}

/// The file's content.
#[derive(Default, Serialize, Deserialize)]
struct CacheFile {
    #[serde(default)]
    entries: Vec<Entry>,
}

/// The token cache at one path.
#[derive(Debug, Clone)]
pub(super) struct TokenCache {
    path: PathBuf,
}

/// The cache, read and locked for one read-modify-write; the lock ends when it is dropped.
pub(super) struct Locked<'a> {
    cache: &'a TokenCache,
    file: CacheFile,
    _lock: File,
}

impl std::fmt::Debug for Locked<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Locked")
            .field("path", &self.cache.path)
            .field("entries", &self.file.entries.len())
            .finish()
    }
}

impl TokenCache {
    /// The cache at `path`.
    pub(super) fn new(path: PathBuf) -> TokenCache {
        TokenCache { path }
    }

    /// The cache where the environment says ([`cache_path`]); `None` without
    /// `PASSTHRU_TOKEN_CACHE`, `XDG_CACHE_HOME` and `HOME`.
    pub(super) fn from_env() -> Option<TokenCache> {
        cache_path(|name| std::env::var_os(name)).map(TokenCache::new)
    }

    /// The cache file.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    fn lock_path(&self) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(".lock");
        PathBuf::from(name)
    }

    /// Makes the cache's directory (0700) when missing.
    fn make_dir(&self) -> anyhow::Result<()> {
        let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) else {
            return Ok(());
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)
            .with_context(|| {
                format!(
                    "cannot make the token cache's directory {} (set {TOKEN_CACHE_ENV} to a \
                     file in a directory you can write)",
                    dir.display()
                )
            })
    }

    /// Takes the cache's lock (waiting for another command that holds it) and reads it.
    pub(super) fn open(&self) -> anyhow::Result<Locked<'_>> {
        self.make_dir()?;
        let lock_path = self.lock_path();
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(FILE_MODE)
            .open(&lock_path)
            .with_context(|| {
                format!("cannot open the token cache's lock {}", lock_path.display())
            })?;
        lock.lock()
            .with_context(|| format!("cannot lock the token cache {}", lock_path.display()))?;
        let file = self.read()?;
        Ok(Locked {
            cache: self,
            file,
            _lock: lock,
        })
    }

    fn read(&self) -> anyhow::Result<CacheFile> {
        let path = self.path.display();
        let mut f = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(CacheFile::default()),
            Err(e) => return Err(e).with_context(|| format!("cannot read the token cache {path}")),
        };
        let mode = f
            .metadata()
            .with_context(|| format!("cannot read the token cache {path}"))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            bail!(
                "the token cache {path} is open to other users (mode {:o}): its tokens may have \
                 been read. Delete it (then sign in again), or make it private with \
                 `chmod 600 {path}`",
                mode & 0o777
            );
        }
        let mut text = Zeroizing::new(String::new());
        f.read_to_string(&mut text)
            .with_context(|| format!("cannot read the token cache {path}"))?;
        serde_json::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "the token cache {path} is not what this program writes ({e}): delete it (it \
                 holds only cached sign-ins) and sign in again"
            )
        })
    }

    /// Writes `file` whole to a new private file beside the cache and renames it over the
    /// cache; no entry left removes the file.
    fn write(&self, file: &CacheFile) -> anyhow::Result<()> {
        let path = self.path.display();
        if file.entries.is_empty() {
            return match std::fs::remove_file(&self.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(e).with_context(|| format!("cannot delete the token cache {path}"))
                }
                _ => Ok(()),
            };
        }
        self.make_dir()?;
        let text = Zeroizing::new(serde_json::to_vec_pretty(file)?);
        let mut tmp_name = self.path.clone().into_os_string();
        tmp_name.push(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
        let tmp = PathBuf::from(tmp_name);
        let written = OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(FILE_MODE)
            .open(&tmp)
            .and_then(|mut f| {
                f.write_all(&text)?;
                f.sync_all()
            })
            .and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e).with_context(|| format!("cannot write the token cache {path}"));
        }
        Ok(())
    }
}

impl Locked<'_> {
    /// The entry of `cloud` and `tenant`.
    pub(super) fn get(&self, cloud: &str, tenant: &str) -> Option<&Entry> {
        self.file.entries.iter().find(|e| e.is(cloud, tenant))
    }

    /// Stores `entry` (replacing the one of its cloud and tenant) and writes the file.
    pub(super) fn put(&mut self, entry: Entry) -> anyhow::Result<()> {
        self.file
            .entries
            .retain(|e| !e.is(&entry.cloud, &entry.tenant));
        self.file.entries.push(entry);
        self.cache.write(&self.file)
    }

    /// Forgets the entry of `cloud` and `tenant`; whether there was one.
    pub(super) fn remove(&mut self, cloud: &str, tenant: &str) -> anyhow::Result<bool> {
        let before = self.file.entries.len();
        self.file.entries.retain(|e| !e.is(cloud, tenant));
        if self.file.entries.len() == before {
            return Ok(false);
        }
        self.cache.write(&self.file)?;
        Ok(true)
    }

    /// The access token cached for `cloud` and `tenant` at `now`: the stored one while it is
    /// valid, else one got with the stored refresh token through `refresh` (the rotated
    /// refresh token is stored). `None` (and the entry forgotten) when there is none, or the
    /// cloud refused the refresh token (expired, revoked, already used): sign in again. A
    /// refresh that could not reach the cloud is an error, and the entry is kept.
    pub(super) async fn token(
        &mut self,
        cloud: &str,
        tenant: &str,
        now: i64,
        refresh: impl AsyncFnOnce(&str) -> Result<AdminTokens, ClientError>,
    ) -> anyhow::Result<Option<Zeroizing<String>>> {
        let Some(entry) = self.get(cloud, tenant) else {
            return Ok(None);
        };
        if entry.access_valid(now) {
            return Ok(Some(entry.access_token.clone()));
        }
        let Some(refresh_token) = entry.refresh_token.clone() else {
            self.remove(cloud, tenant)?;
            return Ok(None);
        };
        match refresh(&refresh_token).await {
            Ok(tokens) => {
                let access = tokens.access_token.clone();
                self.put(Entry::new(cloud, tenant, tokens, Some(refresh_token), now))?;
                Ok(Some(access))
            }
            Err(ClientError::Rejected { .. }) => {
                self.remove(cloud, tenant)?;
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLOUD: &str = "https://login.contoso.example";

    /// A throwaway directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            TempDir(std::env::temp_dir().join(format!(
                "passthru-token-cache-{}",
                uuid::Uuid::new_v4().simple()
            )))
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn tokens(access: &str, expires_in: u64, refresh: Option<&str>) -> AdminTokens {
        AdminTokens {
            access_token: Zeroizing::new(access.into()),
            expires_in,
            refresh_token: refresh.map(|r| Zeroizing::new(r.into())),
        }
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0)
    }

    #[test]
    fn where_the_cache_lives() {
        fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| OsString::from(v))
            }
        }
        let all = [
            (TOKEN_CACHE_ENV, "/tmp/t.json"),
            ("XDG_CACHE_HOME", "/x"),
            ("HOME", "/h"),
        ];
        assert_eq!(cache_path(env(&all)), Some(PathBuf::from("/tmp/t.json")));
        assert_eq!(
            cache_path(env(&[("XDG_CACHE_HOME", "/x"), ("HOME", "/h")])),
            Some(PathBuf::from("/x/passthru/admin-tokens.json"))
        );
        // A relative XDG_CACHE_HOME is ignored, as the specification says; so are empty ones.
        assert_eq!(
            cache_path(env(&[("XDG_CACHE_HOME", "rel"), ("HOME", "/h")])),
            Some(PathBuf::from("/h/.cache/passthru/admin-tokens.json"))
        );
        assert_eq!(
            cache_path(env(&[(TOKEN_CACHE_ENV, ""), ("HOME", "/h")])),
            Some(PathBuf::from("/h/.cache/passthru/admin-tokens.json"))
        );
        assert_eq!(cache_path(env(&[])), None);
    }

    #[test]
    fn private_file_in_a_private_directory() -> anyhow::Result<()> {
        let tmp = TempDir::new();
        let dir = tmp.0.join("a").join("b");
        let cache = TokenCache::new(dir.join("admin-tokens.json"));
        cache.open()?.put(Entry::new(
            CLOUD,
            "Contoso",
            tokens("acc", 3600, Some("ref")),
            None,
            1000,
        ))?;
        assert_eq!(mode(cache.path()), 0o600);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&tmp.0.join("a")), 0o700);
        // Read back under another spelling of the tenant.
        let locked = cache.open()?;
        let e = locked.get(CLOUD, "contoso");
        assert!(
            e.is_some_and(|e| e.access_token.as_str() == "acc"
                && e.expires_at == 4600
                && e.refresh_token.as_deref().map(String::as_str) == Some("ref")),
            "{e:?}"
        );
        drop(locked);
        // No temporary file is left behind.
        assert_eq!(
            std::fs::read_dir(&dir)?.count(),
            2,
            "the cache and its lock"
        );
        // A cache others can read is refused, with what to do.
        std::fs::set_permissions(cache.path(), std::fs::Permissions::from_mode(0o644))?;
        let err = cache
            .open()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("chmod 600"), "{err}");
        // So is one that is not ours.
        std::fs::write(cache.path(), "not json")?;
        std::fs::set_permissions(cache.path(), std::fs::Permissions::from_mode(0o600))?;
        let err = cache
            .open()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("delete it"), "{err}");
        Ok(())
    }

    #[test]
    fn expiry_with_a_margin() {
        let e = Entry::new(CLOUD, "contoso", tokens("a", 3600, None), None, 1000);
        assert!(e.access_valid(1000));
        assert!(e.access_valid(4600 - EXPIRY_MARGIN - 1));
        assert!(!e.access_valid(4600 - EXPIRY_MARGIN));
        assert!(!e.access_valid(5000));
        // A lifetime no i64 holds does not wrap around.
        let e = Entry::new(CLOUD, "contoso", tokens("a", u64::MAX, None), None, 1000);
        assert!(e.access_valid(i64::MAX - EXPIRY_MARGIN - 1));
    }

    #[tokio::test]
    async fn valid_then_refreshed_then_signed_in_again() -> anyhow::Result<()> {
        let tmp = TempDir::new();
        let cache = TokenCache::new(tmp.0.join("admin-tokens.json"));
        cache.open()?.put(Entry::new(
            CLOUD,
            "contoso",
            tokens("acc-1", 3600, Some("ref-1")),
            None,
            0,
        ))?;
        let no_refresh = async |_: &str| -> Result<AdminTokens, ClientError> {
            Err(ClientError::Config("no".into()))
        };

        // Valid: the stored token, no refresh.
        let t = cache
            .open()?
            .token(CLOUD, "contoso", 100, no_refresh)
            .await?;
        assert_eq!(t.as_deref().map(String::as_str), Some("acc-1"));

        // Expired: the refresh token is redeemed, and the rotated one stored.
        let mut presented = String::new();
        let t = cache
            .open()?
            .token(CLOUD, "contoso", 4000, async |rt: &str| {
                presented = rt.to_string();
                Ok(tokens("acc-2", 3600, Some("ref-2")))
            })
            .await?;
        assert_eq!(presented, "ref-1");
        assert_eq!(t.as_deref().map(String::as_str), Some("acc-2"));
        let locked = cache.open()?;
        let e = locked.get(CLOUD, "contoso");
        assert!(
            e.is_some_and(|e| e.expires_at == 7600
                && e.refresh_token.as_deref().map(String::as_str) == Some("ref-2")),
            "{e:?}"
        );
        drop(locked);

        // A cloud that could not be reached: an error, and the entry kept.
        let unreachable = async |_: &str| -> Result<AdminTokens, ClientError> {
            Err(ClientError::Unreachable {
                url: CLOUD.into(),
                detail: "refused".into(),
            })
        };
        assert!(cache
            .open()?
            .token(CLOUD, "contoso", 9000, unreachable)
            .await
            .is_err());
        assert!(cache.open()?.get(CLOUD, "contoso").is_some());

        // A refused refresh token: none, and the entry forgotten (sign in again).
        let refused = async |_: &str| -> Result<AdminTokens, ClientError> {
            Err(ClientError::Rejected {
                code: 70008,
                description: "AADSTS70008: expired".into(),
            })
        };
        assert!(cache
            .open()?
            .token(CLOUD, "contoso", 9000, refused)
            .await?
            .is_none());
        assert!(cache.open()?.get(CLOUD, "contoso").is_none());

        // An expired token without a refresh token: none.
        cache.open()?.put(Entry::new(
            CLOUD,
            "contoso",
            tokens("acc-3", 60, None),
            None,
            0,
        ))?;
        assert!(cache
            .open()?
            .token(CLOUD, "contoso", 30, no_refresh)
            .await?
            .is_none());
        Ok(())
    }

    #[test]
    fn logout_removes_only_its_entry() -> anyhow::Result<()> {
        let tmp = TempDir::new();
        let cache = TokenCache::new(tmp.0.join("admin-tokens.json"));
        let other_cloud = "https://login.fabrikam.example";
        {
            let mut locked = cache.open()?;
            locked.put(Entry::new(CLOUD, "contoso", tokens("a", 60, None), None, 0))?;
            locked.put(Entry::new(
                CLOUD,
                "fabrikam",
                tokens("b", 60, None),
                None,
                0,
            ))?;
            locked.put(Entry::new(
                other_cloud,
                "contoso",
                tokens("c", 60, None),
                None,
                0,
            ))?;
        }
        assert!(cache.open()?.remove(CLOUD, "CONTOSO")?);
        assert!(!cache.open()?.remove(CLOUD, "contoso")?);
        let locked = cache.open()?;
        assert!(locked.get(CLOUD, "contoso").is_none());
        assert!(locked.get(CLOUD, "fabrikam").is_some());
        assert!(locked.get(other_cloud, "contoso").is_some());
        let text = std::fs::read_to_string(cache.path())?;
        assert!(!text.contains("\"a\""), "{text}");
        drop(locked);
        // The last entry gone, the file goes too.
        cache.open()?.remove(CLOUD, "fabrikam")?;
        cache.open()?.remove(other_cloud, "contoso")?;
        assert!(!cache.path().exists());
        Ok(())
    }
}
