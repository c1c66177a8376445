//! `ferry-server backup` and `restore` (docs/operations.md, "Backups"): a consistent copy of
//! a live server's data directory in one tar file, and a fresh data directory made from one.
//!
//! The SQLite database is copied with `VACUUM INTO` on a read-only connection: one read
//! transaction, so the copy is a consistent snapshot while the server goes on writing
//! check-ins and reports (WAL mode lets readers and the writer run together). The other files
//! of the data directory (the secrets key, the device CA, the first tokens, the artifacts)
//! go beside it; deltas are left out (the server builds them again) and, with
//! `--without-artifacts`, the artifacts (kept elsewhere, or too large to copy each time). On
//! PostgreSQL the database is pg_dump's to copy: the backup holds the files only.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use sqlx::ConnectOptions;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot copy the database {path}: {source}")]
    Database {
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },
    #[error("{0} is not a data directory of ferry-server (no ferry.db, secrets.key or artifacts/ in it); give --data-dir")]
    NotADataDir(PathBuf),
    #[error("{0} is not empty: restore into a new data directory (move this one aside first)")]
    NotEmpty(PathBuf),
    #[error("{file} is not a backup of ferry-server: {why}")]
    NotABackup { file: PathBuf, why: String },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What a backup holds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub database: bool,
    pub files: usize,
    pub bytes: u64,
}

/// The database's own files and what the server makes again: never copied file by file.
fn skipped(rel: &Path, artifacts: bool) -> bool {
    let first = rel
        .components()
        .next()
        .and_then(|c| c.as_os_str().to_str())
        .unwrap_or("");
    let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
    matches!(
        first,
        "ferry.db" | "ferry.db-wal" | "ferry.db-shm" | "deltas"
    ) || (first == "artifacts" && !artifacts)
        || name.ends_with(".part")
        || name.ends_with(".fetching")
        || name.starts_with(".tmp")
}

/// Writes a backup of `data_dir` to `to` (atomically, mode 0600). `sqlite`: copy the SQLite
/// database too (not on PostgreSQL).
pub async fn backup(
    data_dir: &Path,
    sqlite: bool,
    artifacts: bool,
    to: &Path,
) -> Result<Summary, BackupError> {
    let db = data_dir.join("ferry.db");
    if !db.exists()
        && !data_dir.join("secrets.key").exists()
        && !data_dir.join("artifacts").is_dir()
    {
        return Err(BackupError::NotADataDir(data_dir.to_path_buf()));
    }
    let part = to.with_extension("part");
    let snapshot = to.with_extension("db-snapshot");
    let _ = fs::remove_file(&snapshot);
    let mut summary = Summary::default();
    if sqlite && db.exists() {
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&db)
            .read_only(true)
            .connect()
            .await
            .map_err(|source| BackupError::Database {
                path: db.clone(),
                source,
            })?;
        sqlx::query("VACUUM INTO ?")
            .bind(snapshot.to_string_lossy().to_string())
            .execute(&mut conn)
            .await
            .map_err(|source| BackupError::Database {
                path: db.clone(),
                source,
            })?;
        summary.database = true;
    }
    let written = write_tar(data_dir, &snapshot, artifacts, &part, &mut summary);
    let _ = fs::remove_file(&snapshot);
    if let Err(e) = written {
        let _ = fs::remove_file(&part);
        return Err(e);
    }
    fs::rename(&part, to).map_err(io_at(to))?;
    Ok(summary)
}

fn write_tar(
    data_dir: &Path,
    snapshot: &Path,
    artifacts: bool,
    part: &Path,
    summary: &mut Summary,
) -> Result<(), BackupError> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(part)
        .map_err(io_at(part))?;
    let mut tar = tar::Builder::new(io::BufWriter::new(file));
    tar.mode(tar::HeaderMode::Complete);
    if summary.database {
        tar.append_path_with_name(snapshot, "ferry.db")
            .map_err(io_at(snapshot))?;
        summary.bytes += fs::metadata(snapshot).map_err(io_at(snapshot))?.len();
    }
    let mut stack = vec![data_dir.to_path_buf()];
    let mut bounded = 0usize;
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<_> = fs::read_dir(&dir)
            .map_err(io_at(&dir))?
            .collect::<Result<_, _>>()
            .map_err(io_at(&dir))?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            bounded += 1;
            if bounded > 10_000_000 {
                return Err(BackupError::NotADataDir(data_dir.to_path_buf()));
            }
            let path = e.path();
            let rel = path.strip_prefix(data_dir).unwrap_or(&path).to_path_buf();
            if skipped(&rel, artifacts) {
                continue;
            }
            let kind = e.file_type().map_err(io_at(&path))?;
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                tar.append_path_with_name(&path, &rel)
                    .map_err(io_at(&path))?;
                summary.files += 1;
                summary.bytes += e.metadata().map_err(io_at(&path))?.len();
            }
        }
    }
    let out = tar.into_inner().map_err(io_at(part))?;
    let file = out.into_inner().map_err(|e| BackupError::Io {
        path: part.to_path_buf(),
        source: e.into_error(),
    })?;
    file.sync_all().map_err(io_at(part))?;
    Ok(())
}

/// Unpacks a backup into `data_dir`, which must not exist or be empty. Only plain files and
/// directories inside it are taken; anything else means the file is not a backup.
pub fn restore(from: &Path, data_dir: &Path) -> Result<Summary, BackupError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if data_dir.exists()
        && fs::read_dir(data_dir)
            .map_err(io_at(data_dir))?
            .next()
            .is_some()
    {
        return Err(BackupError::NotEmpty(data_dir.to_path_buf()));
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .map_err(io_at(data_dir))?;
    let not_a_backup = |why: String| BackupError::NotABackup {
        file: from.to_path_buf(),
        why,
    };
    let file = fs::File::open(from).map_err(io_at(from))?;
    let mut archive = tar::Archive::new(io::BufReader::new(file));
    let mut summary = Summary::default();
    for entry in archive.entries().map_err(io_at(from))? {
        let mut entry = entry.map_err(|e| not_a_backup(e.to_string()))?;
        let rel = entry
            .path()
            .map_err(|e| not_a_backup(e.to_string()))?
            .into_owned();
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(not_a_backup(format!("it names {}", rel.display())));
        }
        match entry.header().entry_type() {
            tar::EntryType::Directory => continue,
            tar::EntryType::Regular => {}
            other => {
                return Err(not_a_backup(format!(
                    "{} is a {other:?}, not a file",
                    rel.display()
                )))
            }
        }
        let path = data_dir.join(&rel);
        if let Some(parent) = path.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(io_at(parent))?;
        }
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_at(&path))?;
        summary.bytes += io::copy(&mut entry, &mut out).map_err(io_at(&path))?;
        out.sync_all().map_err(io_at(&path))?;
        if rel == Path::new("ferry.db") {
            summary.database = true;
        } else {
            summary.files += 1;
        }
    }
    if !summary.database && summary.files == 0 {
        return Err(not_a_backup("it holds nothing".into()));
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_deltas_and_partial_files_are_not_copied_file_by_file() {
        for (rel, artifacts, skip) in [
            ("ferry.db", true, true),
            ("ferry.db-wal", true, true),
            ("deltas/web/1-2.delta", true, true),
            ("artifacts/web-1.tar.gz", true, false),
            ("artifacts/web-1.tar.gz", false, true),
            ("artifacts/web-1.tar.gz.part", true, true),
            ("secrets.key", false, false),
            ("device-ca.key", false, false),
        ] {
            assert_eq!(skipped(Path::new(rel), artifacts), skip, "{rel}");
        }
    }

    #[test]
    fn a_restore_refuses_a_used_directory_and_what_is_not_a_backup() {
        let dir = tempfile::tempdir().unwrap();
        let used = dir.path().join("used");
        fs::create_dir(&used).unwrap();
        fs::write(used.join("x"), "x").unwrap();
        let tar_path = dir.path().join("b.tar");
        {
            let mut b = tar::Builder::new(fs::File::create(&tar_path).unwrap());
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            b.append_link(&mut h, "secrets.key", "/etc/shadow").unwrap();
            b.finish().unwrap();
        }
        assert!(matches!(
            restore(&tar_path, &used),
            Err(BackupError::NotEmpty(_))
        ));
        let e = restore(&tar_path, &dir.path().join("fresh")).unwrap_err();
        assert!(e.to_string().contains("not a file"), "{e}");
    }
}
