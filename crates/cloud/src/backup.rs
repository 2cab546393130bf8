//! `passthru-cloud backup --data-dir DIR --out FILE [--force]`: one tar archive (mode 0600: it
//! holds private keys) with everything needed to serve the deployment again.
//!
//! - A SQLite deployment: a consistent copy of the store taken while `serve` runs and writes
//!   (`VACUUM INTO`, [`crate::store::snapshot_sqlite`]) as `passthru.db`, and every other file
//!   of the data dir: the key that seals secrets (`mfa.key`), the TLS CA and certificate
//!   (`tls/`), the agent CA (`agent-ca/`).
//! - A PostgreSQL deployment (`store.url`): the data dir's files only; the database is
//!   backed up with `pg_dump` (the summary prints the command).
//!
//! Entries are relative to the data dir and keep their modes: restore with
//! `install -d -m 0700 NEW && tar -xpf FILE -C NEW`. The archive is written to a temporary
//! file beside `FILE` and renamed into place when complete.

use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use crate::init::{store_location, StoreLocation, STORE_FILE};

/// What `backup` wrote.
#[derive(Debug)]
pub struct BackedUp {
    pub data_dir: PathBuf,
    pub out: PathBuf,
    /// Every entry of the archive (relative paths; directories end with `/`).
    pub entries: Vec<String>,
    /// The archive's size in bytes.
    pub bytes: u64,
    /// What the archive holds of the store.
    pub store: StoreCopy,
}

/// The store's part of a backup.
#[derive(Debug)]
pub enum StoreCopy {
    /// A copy of the SQLite store, at this schema version.
    Sqlite { schema: i64 },
    /// Nothing: the store is this PostgreSQL database (URL without its password), to back
    /// up with `pg_dump`.
    Postgres { url: String },
}

impl std::fmt::Display for BackedUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let files = self.entries.iter().filter(|e| !e.ends_with('/')).count();
        writeln!(
            f,
            "Backed up {} to {} ({files} files, {} bytes, mode 0600):",
            self.data_dir.display(),
            self.out.display(),
            self.bytes
        )?;
        for e in &self.entries {
            writeln!(f, "  {e}")?;
        }
        match &self.store {
            StoreCopy::Sqlite { schema } => {
                writeln!(
                    f,
                    "The store ({STORE_FILE}, schema {schema}) is a consistent copy taken while serving."
                )?;
            }
            StoreCopy::Postgres { url } => {
                writeln!(
                    f,
                    "The store is the PostgreSQL database {url}: it is NOT in this archive. Back it up with pg_dump, e.g.:"
                )?;
                writeln!(
                    f,
                    "  pg_dump --format=custom --file=passthru-$(date +%F).dump --dbname='{url}'"
                )?;
                writeln!(
                    f,
                    "and keep that dump with this archive: the database is useless without mfa.key and the CAs, and they without it."
                )?;
            }
        }
        writeln!(
            f,
            "Restore: install -d -m 0700 NEW_DATA_DIR && tar -xpf {} -C NEW_DATA_DIR",
            self.out.display()
        )
    }
}

/// Files of a SQLite data dir that are not copied as they are: the store (copied through
/// SQLite instead), its journals and its serve lock.
fn is_store_file(name: &str) -> bool {
    name == STORE_FILE
        || name
            .strip_prefix(STORE_FILE)
            .is_some_and(|rest| matches!(rest, "-wal" | "-shm" | "-journal" | ".serve-lock"))
}

/// Backs up `data_dir` into the new archive `out` (replacing an existing one only with
/// `force`).
pub async fn backup(data_dir: &Path, out: &Path, force: bool) -> anyhow::Result<BackedUp> {
    let location = store_location(data_dir)?;
    let missing: Vec<&str> = [crate::secret_box::KEY_FILE, "tls", "agent-ca"]
        .into_iter()
        .filter(|name| !data_dir.join(name).exists())
        .collect();
    if !missing.is_empty() {
        anyhow::bail!(
            "{} has no {}: it is not the data dir of a deployment that has served (a backup without the keys could not be served)",
            data_dir.display(),
            missing.join(", ")
        );
    }
    if out.exists() && !force {
        anyhow::bail!(
            "{} already exists: refusing to overwrite it. Choose another --out, or add --force to replace it",
            out.display()
        );
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = out
        .file_name()
        .ok_or_else(|| anyhow::anyhow!("--out {} names no file", out.display()))?
        .to_string_lossy()
        .into_owned();
    let tag = uuid::Uuid::new_v4().simple().to_string();
    // The store's copy is made in a private directory beside the archive, the archive in a
    // private temporary file there; both go whatever happens.
    let work = parent.join(format!(".{name}.{tag}.d"));
    let tmp = parent.join(format!(".{name}.{tag}.tmp"));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&work)
        .map_err(|e| anyhow::anyhow!("cannot write beside {}: {e}", out.display()))?;
    let made = write_archive(data_dir, &location, &work, &tmp, &[out, &tmp, &work]).await;
    let _ = std::fs::remove_dir_all(&work);
    let (entries, store) = match made {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    let placed = if force {
        std::fs::rename(&tmp, out)
    } else {
        // A link fails if `out` appeared meanwhile: never overwritten without --force.
        std::fs::hard_link(&tmp, out).and_then(|()| std::fs::remove_file(&tmp))
    };
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        anyhow::bail!("cannot write {}: {e}", out.display());
    }
    let bytes = std::fs::metadata(out)?.len();
    Ok(BackedUp {
        data_dir: data_dir.to_path_buf(),
        out: out.to_path_buf(),
        entries,
        bytes,
        store,
    })
}

async fn write_archive(
    data_dir: &Path,
    location: &StoreLocation,
    work: &Path,
    tmp: &Path,
    skip: &[&Path],
) -> anyhow::Result<(Vec<String>, StoreCopy)> {
    let (store_copy, store) = match location {
        StoreLocation::Sqlite(db) => {
            let copy = work.join(STORE_FILE);
            let snap = crate::store::snapshot_sqlite(db, &copy).await?;
            if let Some(to) = snap.moved_to {
                anyhow::bail!(
                    "the SQLite store of {} was moved to {to} by `passthru-cloud migrate`: back up that database with pg_dump, and this data dir's keys with a data dir that has a store.url, or copy the keys (mfa.key, tls/, agent-ca/) yourself",
                    data_dir.display()
                );
            }
            std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o600))?;
            (
                Some(copy),
                StoreCopy::Sqlite {
                    schema: snap.schema,
                },
            )
        }
        StoreLocation::Postgres(url) => (
            None,
            StoreCopy::Postgres {
                url: crate::init::redact_url(url),
            },
        ),
    };
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", tmp.display()))?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
    tar.follow_symlinks(false);
    let mut entries = Vec::new();
    let skip: Vec<PathBuf> = skip.iter().map(|p| real_path(p)).collect();
    add_dir(&mut tar, data_dir, Path::new(""), &skip, &mut entries)?;
    if let Some(copy) = &store_copy {
        tar.append_path_with_name(copy, STORE_FILE)?;
        entries.push(STORE_FILE.to_string());
    }
    let mut buf = tar.into_inner()?;
    buf.flush()?;
    let file: File = buf.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    entries.sort();
    Ok((entries, store))
}

/// `path` with its directory resolved (the last component as it is: a symlink stays one),
/// to compare paths however they were written.
fn real_path(path: &Path) -> PathBuf {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match (std::fs::canonicalize(parent), path.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => path.to_path_buf(),
    }
}

/// Adds `dir`'s entries (as `prefix/...`), directories first, keeping modes; the store's
/// own files and the paths in `skip` are left out.
fn add_dir(
    tar: &mut tar::Builder<std::io::BufWriter<File>>,
    dir: &Path,
    prefix: &Path,
    skip: &[PathBuf],
    entries: &mut Vec<String>,
) -> anyhow::Result<()> {
    let mut children: Vec<std::fs::DirEntry> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    children.sort_by_key(|e| e.file_name());
    for child in children {
        let path = child.path();
        let name = child.file_name().to_string_lossy().into_owned();
        if prefix.as_os_str().is_empty() && is_store_file(&name) {
            continue;
        }
        if skip.contains(&real_path(&path)) {
            continue;
        }
        let rel = prefix.join(&name);
        let kind = child.file_type()?;
        if kind.is_dir() {
            tar.append_dir(&rel, &path)?;
            entries.push(format!("{}/", rel.display()));
            add_dir(tar, &path, &rel, skip, entries)?;
        } else if kind.is_file() || kind.is_symlink() {
            tar.append_path_with_name(&path, &rel)?;
            entries.push(rel.display().to_string());
        } else {
            tracing::warn!(path = %path.display(), "not a file or directory: left out of the backup");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use zeroize::Zeroizing;

    use super::*;
    use crate::store::Store;

    fn mode(p: &Path) -> anyhow::Result<u32> {
        Ok(std::fs::metadata(p)?.permissions().mode() & 0o777)
    }

    async fn new_data_dir(label: &str) -> anyhow::Result<PathBuf> {
        let dir = std::env::temp_dir().join(format!("passthru-{label}-{}", uuid::Uuid::new_v4()));
        crate::init::init(
            &dir,
            "contoso",
            "admin@contoso.example",
            Zeroizing::new("Adm1n-password".into()),
            &[],
            None,
        )
        .await?;
        Ok(dir)
    }

    /// A backup taken while another connection keeps writing holds every row written before
    /// it began, opens as a store, and keeps every file's mode; the archive is 0600.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_archive_holds_the_rows_and_the_modes() -> anyhow::Result<()> {
        let dir = new_data_dir("backup").await?;
        let (store, _secrets) = crate::init::open_store(&dir, false).await?;
        for i in 0..20 {
            store
                .create_tenant(uuid::Uuid::new_v4(), &format!("before-{i}"), 1)
                .await?;
        }
        // Writes go on during the backup.
        let writer = {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..200 {
                    if store
                        .create_tenant(uuid::Uuid::new_v4(), &format!("during-{i}"), 1)
                        .await
                        .is_err()
                    {
                        return false;
                    }
                }
                true
            })
        };
        let out_dir = std::env::temp_dir().join(format!("passthru-out-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&out_dir)?;
        let out = out_dir.join("backup.tar");
        let done = backup(&dir, &out, false).await?;
        assert!(writer.await?, "the writes went on");
        assert_eq!(mode(&out)?, 0o600);
        assert!(matches!(done.store, StoreCopy::Sqlite { .. }));
        let shown = done.to_string();
        for needle in [
            "mfa.key",
            "tls/ca-key.pem",
            "agent-ca/",
            "passthru.db",
            "tar -xpf",
        ] {
            assert!(shown.contains(needle), "{needle}: {shown}");
        }
        assert!(
            !shown.contains("-wal") && !shown.contains("serve-lock"),
            "{shown}"
        );
        // Nothing left beside the archive.
        assert_eq!(std::fs::read_dir(&out_dir)?.count(), 1);

        let restored = out_dir.join("restored");
        std::fs::DirBuilder::new().mode(0o700).create(&restored)?;
        let mut archive = tar::Archive::new(File::open(&out)?);
        archive.set_preserve_permissions(true);
        archive.unpack(&restored)?;
        for rel in [
            "mfa.key",
            "passthru.db",
            "tls/ca-key.pem",
            "tls/server-key.pem",
        ] {
            assert_eq!(mode(&restored.join(rel))?, 0o600, "{rel}");
            assert_eq!(mode(&dir.join(rel))?, 0o600, "{rel}");
        }
        for rel in ["tls", "agent-ca", "tls/ca.pem"] {
            assert_eq!(mode(&restored.join(rel))?, mode(&dir.join(rel))?, "{rel}");
        }
        assert_eq!(
            std::fs::read(restored.join("mfa.key"))?,
            std::fs::read(dir.join("mfa.key"))?
        );
        let copy = Store::open(&restored.join(STORE_FILE), false).await?;
        assert!(copy.tenant("contoso").await?.is_some());
        for i in 0..20 {
            assert!(copy.tenant(&format!("before-{i}")).await?.is_some(), "{i}");
        }
        assert_eq!(
            copy.deployment_id().await?,
            store.deployment_id().await?,
            "the same deployment"
        );
        copy.close().await;
        // The restored data dir opens with its key (the sealed secrets open).
        let (reopened, secrets) = crate::init::open_store(&restored, false).await?;
        let signer = crate::tokens::Signer::new(reopened.clone(), secrets);
        let t = reopened
            .tenant("contoso")
            .await?
            .ok_or_else(|| anyhow::anyhow!("no tenant"))?;
        signer.keys(t.id).await?;
        reopened.close().await;
        store.close().await;

        // An existing archive is kept without --force, replaced with it.
        let before = std::fs::read(&out)?;
        let refused = backup(&dir, &out, false).await;
        let err = refused.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            err.contains("already exists") && err.contains("--force"),
            "{err}"
        );
        assert_eq!(std::fs::read(&out)?, before);
        backup(&dir, &out, true).await?;
        assert_eq!(mode(&out)?, 0o600);
        std::fs::remove_dir_all(&dir)?;
        std::fs::remove_dir_all(&out_dir)?;
        Ok(())
    }

    /// A directory without a deployment is refused, and no archive is written.
    #[tokio::test]
    async fn no_deployment_no_archive() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("passthru-nobackup-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let out = dir.join("b.tar");
        let err = backup(&dir, &out, false)
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("has no store"), "{err}");
        std::fs::write(dir.join(STORE_FILE), b"")?;
        let err = backup(&dir, &out, false)
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("has no mfa.key, tls, agent-ca"), "{err}");
        assert!(!out.exists());
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    /// A PostgreSQL deployment's archive holds the data dir's files only, and the summary
    /// says how to dump the database (without the URL's password).
    #[tokio::test]
    async fn a_postgres_deployment_gets_its_keys_and_the_pg_dump_command() -> anyhow::Result<()> {
        let dir = new_data_dir("backup-pg").await?;
        std::fs::remove_file(dir.join(STORE_FILE))?;
        std::fs::write(
            dir.join(crate::init::STORE_URL_FILE),
            "postgres://passthru:S3cret@db.example:5432/passthru\n",
        )?;
        let out = dir.join("keys.tar");
        let done = backup(&dir, &out, false).await?;
        let shown = done.to_string();
        assert!(
            shown.contains("pg_dump --format=custom --file=passthru-$(date +%F).dump --dbname='postgres://passthru:***@db.example:5432/passthru'"),
            "{shown}"
        );
        assert!(!shown.contains("S3cret"), "{shown}");
        assert!(done.entries.contains(&"store.url".to_string()));
        assert!(done.entries.contains(&"mfa.key".to_string()));
        assert!(!done
            .entries
            .iter()
            .any(|e| e.starts_with("passthru.db") || e == "keys.tar"));
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    /// A store a newer release migrated is refused before anything is written.
    #[tokio::test]
    async fn a_newer_schema_is_refused() -> anyhow::Result<()> {
        let dir = new_data_dir("backup-newer").await?;
        {
            let store = Store::open(&dir.join(STORE_FILE), false).await?;
            store.close().await;
            let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(dir.join(STORE_FILE));
            let pool = sqlx::SqlitePool::connect_with(opts).await?;
            sqlx::query(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
                 VALUES (9999, 'from the future', 1, x'00', 0)",
            )
            .execute(&pool)
            .await?;
            pool.close().await;
        }
        let out = dir.join("b.tar");
        let err = backup(&dir, &out, false)
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("upgraded by a newer passthru-cloud (schema 9999"),
            "{err}"
        );
        assert!(!out.exists());
        assert_eq!(
            std::fs::read_dir(&dir)?
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with(".b.tar"))
                .count(),
            0
        );
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
