//! CRL publication: for every issuing CA generation one CRL per shard, and for every root
//! generation its ARL. Revocations stream from the database into a temp file of encoded
//! entries (constant memory), the CRL is framed, hashed, signed and written durably to
//! `{out}/crl/{ca}/g{n}/{shard}.crl` (the path of its URL), and recorded. CRL numbers come from
//! one counter per generation, bumped and committed before the CRL is written, so they strictly
//! increase even across crashes.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use futures_util::TryStreamExt;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::authority::{Authority, Generation, arl_url, crl_url};
use crate::crl::{self, CrlParams, Entry, EntryExtensions, Reason, Scope};
use crate::error::{Error, Result};

/// One published CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// CA slug.
    pub ca: String,
    /// Generation.
    pub generation: i64,
    /// Shard, or -1 for an ARL.
    pub shard: i64,
    /// CRL number.
    pub number: i64,
    /// Entries.
    pub entries: u64,
    /// Size in bytes.
    pub bytes: u64,
    /// Where it was written.
    pub path: PathBuf,
}

/// The newest CRL of one shard (or ARL) as its publication recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlRecord {
    /// CA slug.
    pub ca: String,
    /// Generation.
    pub generation: i64,
    /// Shard, or -1 for an ARL.
    pub shard: i64,
    /// CRL number.
    pub number: i64,
    /// thisUpdate (unix seconds).
    pub this_update: i64,
    /// nextUpdate (unix seconds).
    pub next_update: i64,
    /// Entries.
    pub entries: i64,
    /// Size in bytes.
    pub bytes: i64,
}

/// Progress callback: (done, total) CRLs.
pub use identity::progress::Progress;

impl Authority {
    /// Publishes every CRL and ARL under `out`.
    pub async fn publish_crls(
        &self,
        actor: &str,
        out: &Path,
        now: i64,
        progress: Progress<'_>,
    ) -> Result<Vec<Published>> {
        // Every generation that still signs status (pending, issuing, retired) keeps its CRLs.
        let live: Vec<(i64, String)> = self
            .ceremony_status(None, now)
            .await?
            .into_iter()
            .filter(|s| s.state.signs_status())
            .map(|s| (s.generation.generation, s.generation.ca.slug()))
            .collect();
        let gens: Vec<Generation> =
            self.generations().await?.into_iter().filter(|g| live.contains(&(g.generation, g.ca.slug()))).collect();
        let total: i64 = gens.iter().map(|g| if g.ca.prefecture.is_some() { g.shards } else { 1 }).sum();
        let mut done = Vec::new();
        for g in gens.iter().filter(|g| g.ca.prefecture.is_some()) {
            self.publish_ca_issuers(g, out).await?;
        }
        for g in &gens {
            let scopes: Vec<i64> = if g.ca.prefecture.is_some() { (0..g.shards).collect() } else { vec![-1] };
            for shard in scopes {
                done.push(self.publish_one(actor, g, shard, out, now).await?);
                progress(done.len() as u64, total as u64);
            }
        }
        Ok(done)
    }

    /// The newest published CRL of every shard and ARL (what [`Self::publish_crls`] last
    /// wrote for each), by CA, generation and shard.
    pub async fn latest_crls(&self) -> Result<Vec<CrlRecord>> {
        let rows = sqlx::query(
            "SELECT c.slug, c.generation, c.shard, c.number, c.this_update, c.next_update, c.entries, c.bytes FROM ca_crl c \
             WHERE c.number = (SELECT MAX(d.number) FROM ca_crl d WHERE d.slug = c.slug AND d.generation = c.generation AND d.shard = c.shard) \
             ORDER BY c.slug, c.generation, c.shard",
        )
        .fetch_all(self.db().pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CrlRecord {
                    ca: r.try_get(0)?,
                    generation: r.try_get(1)?,
                    shard: r.try_get(2)?,
                    number: r.try_get(3)?,
                    this_update: r.try_get(4)?,
                    next_update: r.try_get(5)?,
                    entries: r.try_get(6)?,
                    bytes: r.try_get(7)?,
                })
            })
            .collect()
    }

    /// Writes the caIssuers bundle of issuing generation `g` (`{out}/ca/{slug}/g{n}.p7c`, its
    /// AIA URL): a certs-only SignedData with `g`'s certificate and every link certificate of
    /// its root, so that a verifier holding any root generation can build the path.
    pub async fn publish_ca_issuers(&self, g: &Generation, out: &Path) -> Result<PathBuf> {
        let root = crate::hierarchy::CaId::root(g.ca.purpose, g.ca.env);
        let mut certs = vec![g.certificate.clone()];
        certs.extend(self.links(&root).await?);
        let der = certs_only(&certs)?;
        let dir = out.join("ca").join(g.ca.slug());
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("g{}.p7c", g.generation));
        crate::key::write_durably(&path, &der)?;
        Ok(path)
    }

    /// Publishes one shard CRL (or, with `shard == -1`, a root generation's ARL).
    pub async fn publish_one(
        &self,
        actor: &str,
        g: &Generation,
        shard: i64,
        out: &Path,
        now: i64,
    ) -> Result<Published> {
        let slug = g.ca.slug();
        let (url, scope, file) = if shard < 0 {
            let url = arl_url(&self.settings().crl_base, &slug, g.generation);
            (url.clone(), Scope::Authorities { url }, "arl.crl".to_owned())
        } else {
            let url = crl_url(&self.settings().crl_base, &slug, g.generation, shard);
            (url.clone(), Scope::Shard { url }, format!("{shard}.crl"))
        };
        let _ = url;
        // The number first, committed: strictly increasing even if this run dies.
        let mut tx = self.db().write().await?;
        let number: i64 = sqlx::query("UPDATE ca_generation SET crl_number = crl_number + 1 WHERE slug = $1 AND generation = $2 RETURNING crl_number")
            .bind(slug.clone())
            .bind(g.generation)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        tx.commit().await?;
        let dir = out.join("crl").join(&slug).join(format!("g{}", g.generation));
        std::fs::create_dir_all(&dir)?;
        let entries_path = dir.join(format!(".{file}.entries"));
        let (count, entries_len) = self.stream_entries(g, shard, &entries_path).await?;
        let key = self.key(g)?;
        let params = CrlParams {
            issuer: g.cert()?.tbs_certificate().subject().clone(),
            issuer_key_id: g.key_id.clone(),
            number: number as u64,
            this_update: now,
            next_update: now + self.settings().crl_hours * 3600,
            scope,
        };
        let final_path = dir.join(&file);
        let tmp = dir.join(format!(".{file}.tmp"));
        let bytes = {
            let f = std::fs::File::create(&tmp)?;
            let mut w = BufWriter::with_capacity(1 << 20, f);
            let n = crl::assemble(
                &params,
                key.as_ref(),
                entries_len,
                || Ok(std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&entries_path)?)),
                &mut w,
            )?;
            w.flush()?;
            w.into_inner().map_err(|e| Error::Io(e.into_error()))?.sync_all()?;
            n
        };
        std::fs::rename(&tmp, &final_path)?;
        std::fs::File::open(&dir)?.sync_all()?;
        std::fs::remove_file(&entries_path)?;
        let digest = sha256_file(&final_path)?;
        let mut tx = self.db().write().await?;
        sqlx::query("INSERT INTO ca_crl (slug, generation, shard, number, this_update, next_update, entries, bytes, sha256, path) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
            .bind(slug.clone())
            .bind(g.generation)
            .bind(shard)
            .bind(number)
            .bind(params.this_update)
            .bind(params.next_update)
            .bind(count as i64)
            .bind(bytes as i64)
            .bind(digest)
            .bind(final_path.display().to_string())
            .execute(&mut *tx)
            .await?;
        crate::audit::append(
            &mut tx,
            now,
            actor,
            "crl",
            &format!("{slug} g{} shard {shard} #{number}: {count} entries", g.generation),
        )
        .await?;
        tx.commit().await?;
        let (g_label, shard_label) = (g.generation.to_string(), shard.to_string());
        metrics::gauge!("jpki_crl_this_update_timestamp_seconds", "ca" => slug.clone(), "generation" => g_label.clone(), "shard" => shard_label.clone())
            .set(params.this_update as f64);
        metrics::gauge!("jpki_crl_next_update_timestamp_seconds", "ca" => slug.clone(), "generation" => g_label.clone(), "shard" => shard_label.clone())
            .set(params.next_update as f64);
        metrics::gauge!("jpki_crl_entries", "ca" => slug.clone(), "generation" => g_label, "shard" => shard_label)
            .set(count as f64);
        Ok(Published {
            ca: slug,
            generation: g.generation,
            shard,
            number,
            entries: count,
            bytes: bytes as u64,
            path: final_path,
        })
    }

    /// Streams the revocations of one scope, encoded, into `path`; returns (count, bytes).
    async fn stream_entries(&self, g: &Generation, shard: i64, path: &Path) -> Result<(u64, usize)> {
        let exts = EntryExtensions::new()?;
        let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
        let mut buf = Vec::with_capacity(128);
        let (mut count, mut len) = (0u64, 0usize);
        // The ARL (shard -1) covers every CA certificate the root generation issued.
        let q = if shard < 0 {
            sqlx::query("SELECT serial_bytes, revoked_at, reason FROM ca_revocation WHERE issuer_slug = $1 AND issuer_generation = $2")
                .bind(g.ca.slug())
                .bind(g.generation)
        } else {
            sqlx::query("SELECT serial_bytes, revoked_at, reason FROM ca_revocation WHERE issuer_slug = $1 AND issuer_generation = $2 AND shard = $3")
                .bind(g.ca.slug())
                .bind(g.generation)
                .bind(shard)
        };
        let mut rows = q.fetch(self.db().pool());
        while let Some(r) = rows.try_next().await? {
            let serial: Vec<u8> = r.try_get(0)?;
            let e = Entry { serial: &serial, revoked_at: r.try_get(1)?, reason: Reason::from_code(r.try_get(2)?)? };
            buf.clear();
            len += crl::encode_entry(&mut buf, &e, &exts)?;
            w.write_all(&buf)?;
            count += 1;
        }
        w.flush()?;
        Ok((count, len))
    }
}

/// A certs-only ("degenerate") CMS SignedData (RFC 5652 §5; the form RFC 5280 §4.2.2.1 names
/// for caIssuers bundles): no content, no signers.
pub fn certs_only(ders: &[Vec<u8>]) -> Result<Vec<u8>> {
    use cms::cert::CertificateChoices;
    use cms::content_info::{CmsVersion, ContentInfo};
    use cms::signed_data::{CertificateSet, EncapsulatedContentInfo, SignedData, SignerInfos};
    use der::asn1::{Any, SetOfVec};
    use der::{Decode, Encode};
    const ID_DATA: const_oid::ObjectIdentifier = const_oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
    const ID_SIGNED_DATA: const_oid::ObjectIdentifier = const_oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
    let certs = ders
        .iter()
        .map(|d| x509_cert::Certificate::from_der(d).map(CertificateChoices::Certificate))
        .collect::<der::Result<Vec<_>>>()?;
    let sd = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::new(),
        encap_content_info: EncapsulatedContentInfo { econtent_type: ID_DATA, econtent: None },
        certificates: Some(CertificateSet(SetOfVec::try_from(certs)?)),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::new()),
    };
    Ok(ContentInfo { content_type: ID_SIGNED_DATA, content: Any::encode_from(&sd)? }.to_der()?)
}

fn sha256_file(p: &Path) -> Result<Vec<u8>> {
    let mut h = Sha256::new();
    let mut f = std::fs::File::open(p)?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = std::io::Read::read(&mut f, &mut buf)?;
        if n == 0 {
            return Ok(h.finalize().to_vec());
        }
        h.update(&buf[..n]);
    }
}
