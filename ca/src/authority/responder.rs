//! Delegated OCSP responder certificates for a CA generation that still signs status.

use std::sync::Arc;

use time::OffsetDateTime;

use super::{AnyProfile, Authority, CertRecord, IssuedCert, Plan, new_serial, shard_of, state};
use crate::error::{Error, Result};
use crate::hierarchy::CaId;
use crate::key::KeyAlgorithm;
use crate::profile::OcspResponder;
use crate::revocation::CertKind;

impl Authority {
    /// Certifies a delegated OCSP responder key for generation `generation` of `ca` (none:
    /// the issuing one), which must still sign status (pending, issuing or retired); validity
    /// `days`, at most the CA's.
    pub async fn issue_responder(
        &self,
        actor: &str,
        ca: &CaId,
        generation: Option<i64>,
        spki: &[u8],
        days: i64,
        now: i64,
    ) -> Result<IssuedCert> {
        KeyAlgorithm::of_spki(spki)?;
        let g = match generation {
            None => self.current(ca, now).await?,
            Some(n) => {
                let st = self.ceremony_status(Some(ca), now).await?;
                let s = st
                    .into_iter()
                    .find(|s| s.generation.generation == n)
                    .ok_or_else(|| Error::NotFound(format!("{ca} g{n}")))?;
                if !s.state.signs_status() {
                    return Err(Error::refused(
                        "generation_not_live",
                        format!("{ca} g{n} is {}: it has no responders", s.state.name()),
                    ));
                }
                s.generation
            }
        };
        let g = Arc::new(g);
        let t = OffsetDateTime::from_unix_timestamp(now).map_err(|e| Error::invalid("time", e))?;
        let end = (t + time::Duration::days(days.clamp(1, 366)))
            .min(OffsetDateTime::from_unix_timestamp(g.not_after).map_err(|e| Error::invalid("time", e))?);
        let serial = new_serial();
        let subject = format!("CN=OCSP responder {} g{},O=JPKI,C=JP", ca.slug(), g.generation)
            .parse()
            .map_err(|e| Error::invalid("subject", e))?;
        let plan = Plan {
            kind: CertKind::OcspResponder,
            profile: AnyProfile::Responder(OcspResponder {
                issuer: g.cert()?.tbs_certificate().subject().clone(),
                subject,
            }),
            shard: shard_of(&serial, g.shards),
            issuer: g,
            serial,
            spki: spki.to_vec(),
            not_before: t,
            not_after: end,
            resident_code: None,
            issuance_id: None,
            request_id: None,
            feed_position: 0,
            supersedes: Vec::new(),
        };
        Ok(self.run(actor, vec![plan], now).await?.remove(0))
    }

    /// The delegated OCSP responder certificates issued (newest notAfter first, at most
    /// `limit`), revoked ones included. Responders name no resident, so the
    /// `(resident_code, kind)` index finds them.
    pub async fn responders(&self, limit: i64) -> Result<Vec<CertRecord>> {
        let rows = sqlx::query(concat!(
            cert_select!(),
            " WHERE c.resident_code IS NULL AND c.kind = $1 AND c.state = $2 ORDER BY c.not_after DESC, c.serial LIMIT $3"
        ))
        .bind(CertKind::OcspResponder as i64)
        .bind(state::ISSUED)
        .bind(limit.clamp(1, 10_000))
        .fetch_all(self.db().pool())
        .await?;
        rows.iter().map(super::records::record).collect()
    }
}
