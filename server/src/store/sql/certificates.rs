//! Device certificates: the ones the device CA issued and the factory certificates accepted,
//! kept after their host is gone so they are refused for good.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::Sql;
use crate::store::{CertificateHolder, CertificateRow, Result};

fn certificate_from(r: &AnyRow) -> Result<CertificateRow> {
    Ok(CertificateRow {
        fingerprint: r.try_get("fingerprint")?,
        host_id: r.try_get("host_id")?,
        serial: r.try_get("serial")?,
        source: r.try_get("source")?,
        not_after: r.try_get("not_after")?,
        issued_at: r.try_get("issued_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

impl Sql {
    /// Records a certificate of a host, which from now on authenticates by certificate.
    pub async fn add_certificate(&self, c: &CertificateRow) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO device_certificates (fingerprint, host_id, serial, source, not_after, issued_at, revoked_at)
             VALUES ($1, $2, $3, $4, $5, $6, NULL)",
        )
        .bind(&c.fingerprint)
        .bind(&c.host_id)
        .bind(&c.serial)
        .bind(&c.source)
        .bind(&c.not_after)
        .bind(&c.issued_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE hosts SET auth = 'certificate' WHERE id = $1")
            .bind(&c.host_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The certificate with this fingerprint and whether its host is still there, accepted.
    pub async fn certificate(&self, fingerprint: &str) -> Result<Option<CertificateHolder>> {
        let row = sqlx::query(
            "SELECT c.fingerprint, c.host_id, c.serial, c.source, c.not_after, c.issued_at,
                    c.revoked_at, h.accepted
             FROM device_certificates c LEFT JOIN hosts h ON h.id = c.host_id
             WHERE c.fingerprint = $1",
        )
        .bind(fingerprint)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(CertificateHolder {
                certificate: certificate_from(&r)?,
                accepted: r.try_get::<Option<i64>, _>("accepted")?.map(|a| a != 0),
            })
        })
        .transpose()
    }

    /// A host's certificates, newest first.
    pub async fn host_certificates(&self, host_id: &str) -> Result<Vec<CertificateRow>> {
        let rows = sqlx::query(
            "SELECT fingerprint, host_id, serial, source, not_after, issued_at, revoked_at
             FROM device_certificates WHERE host_id = $1 ORDER BY issued_at DESC, fingerprint",
        )
        .bind(host_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(certificate_from).collect()
    }

    /// Records that two devices used the host's identity at once (`what`: when and from where).
    pub async fn record_clone(&self, host_id: &str, what: &str) -> Result<()> {
        sqlx::query("UPDATE hosts SET clone_seen = $1 WHERE id = $2")
            .bind(what)
            .bind(host_id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// (how the host authenticates, the last clone seen) of a host.
    pub async fn host_identity(&self, host_id: &str) -> Result<Option<(String, Option<String>)>> {
        let row = sqlx::query("SELECT auth, clone_seen FROM hosts WHERE id = $1")
            .bind(host_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.try_get("auth")?, r.try_get("clone_seen")?)))
            .transpose()
    }
}
