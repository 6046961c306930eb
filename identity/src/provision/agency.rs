//! Agencies registered at a provision point: registration by an operator of the holder (for
//! purposes of the agency's class in the law table) and the look-up of the agency a caller's
//! network certificate names.

use sqlx::Row;

use super::{Agency, Holder, Provider};
use crate::error::{Error, Result};
use crate::law::AgencyClass;
use crate::operator::{self, Operator, Role};

impl Provider {
    /// Registers an agency of `class` under `id`, the name in its network certificate
    /// (`urn:jpki:agency:<id>`, or `urn:jpki:ca:<id>` for a CA querying as an agency); returns
    /// the agency as provision sees it. There is no secret: the agency authenticates with its
    /// certificate, and the HTTP shell looks it up with [`Provider::registered_agency`].
    pub async fn register_agency(
        &self,
        op: &Operator,
        id: &str,
        name: &str,
        class: AgencyClass,
        purposes: &[&str],
        now: i64,
    ) -> Result<Agency> {
        let required = match self.holder {
            Holder::National => Role::NationalOperator,
            Holder::Prefecture(_) => Role::PrefectureOperator,
        };
        op.require(required, "register agencies")?;
        if !class.for_agencies() {
            return Err(Error::invalid(
                "class",
                format!(
                    "{} ({}) is no agency's class: the national node relays it itself",
                    class.label(),
                    class.code()
                ),
            ));
        }
        if !self.holder.serves(class) {
            return Err(Error::invalid(
                "class",
                format!("{} ({}) is served by {}, not here", class.label(), class.code(), self.holder.other()),
            ));
        }
        if purposes.is_empty() {
            return Err(Error::invalid("purposes", "an agency needs at least one purpose".into()));
        }
        for p in purposes {
            match self.law.get(p) {
                Some(x) if x.agency_class == class => {}
                Some(x) => {
                    return Err(Error::invalid(
                        "purposes",
                        format!(
                            "{p} is a purpose of {} ({}), not of {}",
                            x.agency_class.label(),
                            x.agency_class.code(),
                            class.code()
                        ),
                    ));
                }
                None => return Err(Error::invalid("purposes", format!("{p} is not in the law table"))),
            }
        }
        if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(Error::invalid("agency id", "1–64 of A–Z a–z 0–9 - _".into()));
        }
        let mut tx = self.db.write().await?;
        // `secret_sha256` held the hash of the bearer token agencies used before mutual TLS;
        // the column stays (migrations are never rewritten) and is written empty: no secret
        // exists, nothing compares against it.
        let r = sqlx::query("INSERT INTO agency (id, name, class, secret_sha256) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(name)
            .bind(class.code())
            .bind(Vec::<u8>::new())
            .execute(&mut *tx)
            .await;
        if let Err(sqlx::Error::Database(e)) = &r
            && e.is_unique_violation()
        {
            return Err(Error::Conflict(format!("agency {id} exists")));
        }
        r?;
        for p in purposes {
            sqlx::query("INSERT INTO agency_purpose (agency, purpose) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(id)
                .bind(*p)
                .execute(&mut *tx)
                .await?;
        }
        operator::log(
            &mut tx,
            op,
            "register_agency",
            &format!("{id} ({}) for {}", class.code(), purposes.join(",")),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(Agency {
            id: id.to_owned(),
            name: name.to_owned(),
            class,
            purposes: purposes.iter().map(|p| (*p).to_owned()).collect(),
        })
    }

    /// The agency registered here under `id` (the name in its network certificate), if any.
    pub async fn registered_agency(&self, id: &str) -> Result<Option<Agency>> {
        let Some(r) =
            sqlx::query("SELECT name, class FROM agency WHERE id = $1").bind(id).fetch_optional(self.db.pool()).await?
        else {
            return Ok(None);
        };
        let class: String = r.try_get(1)?;
        let purposes = sqlx::query("SELECT purpose FROM agency_purpose WHERE agency = $1")
            .bind(id)
            .fetch_all(self.db.pool())
            .await?
            .into_iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<Result<_, _>>()?;
        Ok(Some(Agency {
            id: id.to_owned(),
            name: r.try_get(0)?,
            class: class.parse().map_err(|e| Error::corrupt("agency", e))?,
            purposes,
        }))
    }
}
