//! Structures and functions to perform CRL processing client functionality for one CRL at a time
//! (minus support for delta CRLs, indirect CRLs, CRLs scoped by onlySomeReasons, on hold, and
//! nameRelativeToIssuer distribution points). The revocation checker's CRL steps judge the CRLs at
//! hand together, with all of those, in [`crl_processing`](crate::revocation::crl_processing);
//! [`process_crl`] remains for CRLs fetched from distribution points and for OCSP responders.

extern crate alloc;
use alloc::{
    string::{String, ToString},
    vec::Vec,
};
use flagset::{flags, FlagSet};

use log::{debug, error, info};

use const_oid::db::rfc5912::{
    ID_CE_AUTHORITY_KEY_IDENTIFIER, ID_CE_BASIC_CONSTRAINTS, ID_CE_CERTIFICATE_ISSUER,
    ID_CE_CRL_DISTRIBUTION_POINTS, ID_CE_CRL_NUMBER, ID_CE_CRL_REASONS, ID_CE_DELTA_CRL_INDICATOR,
    ID_CE_FRESHEST_CRL, ID_CE_HOLD_INSTRUCTION_CODE, ID_CE_INVALIDITY_DATE,
    ID_CE_ISSUING_DISTRIBUTION_POINT,
};
use der::{Decode, DerOrd, Encode};
use x509_cert::ext::pkix::crl::dp::ReasonFlags;
use x509_cert::ext::pkix::{
    crl::dp::DistributionPoint,
    name::{DistributionPointName, GeneralName, GeneralNames},
    KeyUsages,
};
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, CrlDistributionPoints, IssuingDistributionPoint,
};
use x509_cert::name::Name;
use x509_cert::{
    certificate::Raw,
    crl::{CertificateList, RevokedCert},
    ext::Extensions,
};

use crate::crl::CrlReasons::AllReasons;
use crate::revocation::subject_name_and_key::SubjectNameAndKey;
use crate::Error::CrlIncompatible;
use crate::{
    compare_names, name_to_string, CertificationPathResults, CertificationPathSettings,
    DeferDecodeSigned, Error, ExtensionProcessing, PDVCertificate, PDVExtension,
    PathValidationStatus, PkiEnvironment, Result, TimeOfInterest,
};

use core::time::Duration;

// The collector itself is ungated, but the only caller here is the remote CRL fetcher.
#[cfg(feature = "remote")]
use crate::collect_crl_dp_uris;

#[cfg(feature = "remote")]
use alloc::vec;

// Certificates are classified based on the values found in the CRLDistributionPoints and BasicConstraints
// extensions, if present, without regard for criticality.  Certificates with BasicConstraints present and
// the isCA field set to true are CA certificates.  Certificates without BasicConstraints or with BasicConstraints
// present and the isCA field set to false are EE certificates.  For either, if the CRLDistributionsPoints
// extension is present, the certificates gets a DP classification.
//
// enum CertRevType { EeDp, Ee, CaDp, Ca, Unsupported }
// - End-entity certificate with CRL DP 	(EeDp)
// - End-entity certificate with no CRL DP	(Ee)
// - CA certificate with CRL DP 			(CaDp)
// - CA certificate with no CRL DP			(Ca)

// CRLs are classified based on the values found in the IssuingDistributionPoint and DeltaCRLIndicator
// extensions, if present, without regard for criticality.  IssuingDistributionPoint is defined as follows
// (with related enumerations given as a ASN.1 comments for each field):
//
//	IssuingDistPointSyntax ::= SEQUENCE
//	{
//		distributionPoint			[0] DistributionPointName	OPTIONAL,		-- CrlScope
//		onlyContainsUserCerts		[1] BOOLEAN					DEFAULT FALSE,	-- CrlCoverage
//		onlyContainsAuthorityCerts	[2] BOOLEAN					DEFAULT FALSE,	-- CrlCoverage
//		onlySomeReasons				[3] ReasonFlags				OPTIONAL,		-- CrlReasons
//		indirectCRL					[4] BOOLEAN					DEFAULT FALSE,	-- CrlAuthority
//		onlyContainsAttributeCerts	[5] BOOLEAN					DEFAULT FALSE	-- CrlCoverage
//	}
//
//The DeltaCRLIndicator extension is simply an integer as defined below:
//
//	BaseCRLNumber ::= CRLNumber
//

// The CrlScope enum indicates the scope of the CRL, i.e. complete, delta or distribution point (further scoped by
// reason or other factors).  The value is determined by inspection of the DeltaCRLIndicator and/or the distributionPoint
// field of the IssuingDistributionPoint extension of the CRL.
//
// enum CrlScope {Complete, Dp, Delta, DeltaDp, Unsupported}
//	- Complete		: The CRL contains no DeltaCRLIndicator indicator and either has no IssuingDistributionPoint
//					  extension or has an IssuingDistributionPoint extension with no distributionPoint field.
//	- Dp			: The CRL contains no DeltaCRLIndicator indicator and has an IssuingDistributionPoint extension
//					  with a distributionPoint field.
//	- Delta		    : The CRL contains a DeltaCRLIndicator indicator and either has no IssuingDistributionPoint
//					  extension or has an IssuingDistributionPoint extension with no distributionPoint field.
//	- DeltaDp		: The CRL contains a DeltaCRLIndicator indicator and has an IssuingDistributionPoint extension
//					  with a distributionPoint field.

// The CrlCoverage enum indicates the type(s) of entities covered by the CRL.  The value is determined by inspection
// of the onlyContainsUserCerts, onlyContainsAuthorityCerts and onlyContainsAttributeCerts fields of the
// IssuingDistributionPoint extension in the CRL.  CRLs that contain more than one onlyContainsXXX field can be
// considered invalid and discarded.  (The fields are logically a CHOICE and should've been defined as such.)
//
// enum CrlCoverage {All, EeOnly, CaOnly, Unsupported}
//	- All			: The CRL contains no IssuingDistributionPoint extension or has an IssuingDistributionPoint
//					  extension with no onlyContainsUserCerts, onlyContainsAuthorityCerts or onlyContainsAttributeCerts
//					  fields set to true.
//	- EeOnly		: The CRL contains an IssuingDistributionPoint extension with onlyContainsUserCerts set to true.
//	- CaOnly		: The CRL contains an IssuingDistributionPoint extension with onlyContainsAuthorityCerts set to true.
//	- Unsupported	: Unsupported - the CRL contains an IssuingDistributionPoint extension with onlyContainsAttributeCerts set to true.

// The CrlCoverage value may also be used to determines the attributes to search when retrieving CRLs from a directory.
// Below are the relationship between each enumerated value and directory attributes (however, this implementation does
// not support LDAP so directory retrieval is moot in this context):
//	All		: certificateRevocationList, authorityRevocationList
//	EeOnly	: certificateRevocationList
//	CaOnly	: authorityRevocationList

// The CrlAuthority enum indicates whether or not the CRL includes revocation notifications for CAs other than the issuer
// of the CRL.  The value is determined by inspection of the indirectCRL field of the IssuingDistributionPoint extension
// of the CRL.
//
// enum CrlAuthority {Direct, Indirect, Unsupported}
//	- Direct	: The CRL contains no IssuingDistributionPoint extension or has an IssuingDistributionPoint
//				  extension with no indirectCRL field.
//	- Indirect	: The CRL contains an IssuingDistributionPoint extension with indirectCRL present.

// The CrlReasons enum indicates whether or not the CRL covers all reason codes or a subset.  The value is determined by
// inspection of the onlySomeReasons field of the IssuingDistributionPoint extension of the CRL.
//
// enum CrlReasons {AllReasons, SomeReasons, Unsupported}
//  - AllReasons	: The CRL contains no IssuingDistributionPoint extension or has an IssuingDistributionPoint
//				      extension with no onlySomeReasons field.
//  - SomeReasons : The CRL contains an IssuingDistributionPoint extension with onlySomeReasons present.

//Annex B of X.509 defines the following types of CRLs (given below along with CrlCoverage, CrlScope
//and CrlAuthority values that define the type)
//
//-	Full and complete CRL,				(All,	 Complete,	Direct)
//					  EPRL,				(EeOnly, Complete,	Direct)
//					  or CARL;			(CaOnly, Complete,	Direct)

//-	Indirect CRL,						(All,	 Complete,	Indirect)
//			 EPRL						(EeOnly, Complete,	Indirect)
//			 or CARL (ICRL);			(CaOnly, Complete,	Indirect)

//-	Delta CRL (dCRL),					(All,	 Delta,		Direct)
//		  dEPRL							(EeOnly, Delta,		Direct)
//		  or dCARL;						(CaOnly, Delta,		Direct)

//-	Indirect dCRL,						(All,	 Delta,		Indirect)
//			 dEPRL						(EeOnly, Delta,		Indirect)
//			 or dCARL.					(CaOnly, Delta,		Indirect)

//-	Distribution Point CRL,				(All,	 Dp,    	Direct)
//					   EPRL				(EeOnly, Dp,		Direct)
//					   or CARL;			(CaOnly, Dp,		Direct)

// Annex B of X.509 does not identify Indirect Distribution Point CRLs, Delta Distribution Point CRLs
// or Indirect Delta Distribution Point CRLs
// -	Indirect Distribution Point CRL,    (All,	 Dp,    	Indirect)
//								EPRL	    (EeOnly, Dp,		Indirect)
//								or CARL     (CaOnly, Dp,		Indirect)

// -	Delta Distribution Point CRL,	    (All,	 DeltaDp,	Direct)
//		  EPRL							    (EeOnly, DeltaDp,	Direct)
//		  or CARL						    (CaOnly, DeltaDp,	Direct)

// -	Indirect Delta Distrib. Point CRL,	(All,	 DeltaDp,	Indirect)
//			 EPRL						    (EeOnly, DeltaDp,	Indirect)
//			 or CARL.					    (CaOnly, DeltaDp,	Indirect)

// For each of the 24 types of CRLs identified above there are 2 possible varieties: CrAllReasons, CrSomeReasons.
// There are 48 types of CRLs in total.

// The CRL types that are permissible for each type of certificate are given below.
// CrlReasons are not considered as either value is always permissible from a validation point of view
// and depend on the reason codes of interest indicated by an application.  CrlAuthority is not considered
// as either value is always permissible.  The total number of permissible CRLs for each cert type is
// always the number identified below multiplied by four.

// End-entity certificate with CRL DP or freshestCRL (EeDp)
// PERMISSIBLE TYPES (8)
//	- CrlScope		: Complete, Dp, Delta, DeltaDp
//	- CrlCoverage	: All, EeOnly

//End-entity certificate with no CRL DP nor freshestCRL	(CtEe)
//PERMISSIBLE TYPES (4)
//	- CrlScope		: Complete, Delta
//	- CrlCoverage	: All, EeOnly

//CA certificate with CRL DP or freshestCRL (CaDp)
//PERMISSIBLE TYPES (8)
//	- CrlScope		: Complete, Dp, Delta, DeltaDp
//	- CrlCoverage	: All, CaOnly

//CA certificate with no CRL DP nor freshestCRL (CtCa)
//PERMISSIBLE TYPES (4)
//	- CrlScope		: Complete, Delta
//	- CrlCoverage	: All, CaOnly

// Certificate types are rows, CRL scopes are columns.
// enum CertRevType { CtEeDp, CtEe, CtCaDp, CtCa, CtUnsupported }
// enum CrlScope { CsComplete, CsDp, CsDelta, CsDeltaDp, CsUnsupported}
//
// Delta scopes are marked incompatible for all certificate types: absent base+delta
// merge support, a lone delta CRL only lists changes since its base, so processing
// one as if complete would report a base-revoked certificate as good.
const COMPATIBLE_SCOPE: [[bool; 4]; 4] = [
    // CsComplete,  CsDp, CsDelta, CsDeltaDp
    [true, true, false, false],  // CtEeDp
    [true, false, false, false], // CtEe
    [true, true, false, false],  // CtCaDp
    [true, false, false, false], // CtCa
];

// Certificate types are rows, CRL coverages are columns.
// enum CertRevType { CtEeDp, CtEe, CtCaDp, CtCa, CtUnsupported }
// enum CrlCoverage {CcAll, CcEeOnly, CcCaOnly, CcUnsupported}
const COMPATIBLE_COVERAGE: [[bool; 3]; 4] = [
    //CcAll, CcEeOnly, CcCaOnly
    [true, true, false], // CtEeDp
    [true, true, false], // CtEe
    [true, false, true], // CtCaDp
    [true, false, true], // CtCa
];

/// The CertRevType enum is used to identify certificate with regard to types of CRLs that are applicable.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CertRevType {
    /// Certificate features a distribution point name and either no basicConstraints or basicConstraints with isCA set to false
    EeDp,
    /// Certificate features no distribution point name and either no basicConstraints or basicConstraints with isCA set to false
    Ee,
    /// Certificate features a distribution point name and basicConstraints with isCA set to true
    CaDp,
    /// Certificate features no distribution point name and basicConstraints with isCA set to true
    Ca,
}

/// The CrlScope enum is used to identify CRL scope, i.e., whether the CRL is full, partitioned, delta or
/// delta partianed. Partitioning is performed using issuing distribution point extensions.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CrlScope {
    /// CRL is not limited in scope by issuing distribution point or delta CRL indicator
    Complete,
    /// CRL is limited in scope by issuing distribution point but not by delta CRL indicator
    Dp,
    /// CRL is not limited in scope by issuing distribution point but includes a delta CRL indicator
    Delta,
    /// CRL is limited in scope by issuing distribution point and delta CRL indicator
    DeltaDp,
}

/// The CrlCoverage enum is used to identify CRL coverage, i.e., whether the CRL features entries for
/// all types of entities, only for CA entities or only for end entities.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CrlCoverage {
    /// CRL coverage is not limited by flags in issuing distribution point
    All,
    /// CRL coverage is limited to end entity certificates only by issuing distribution point
    EeOnly,
    /// CRL coverage is limited to CA certificates only by issuing distribution point
    CaOnly,
}

/// The CrlAuthority enum is used to identify CRL authority, i.e., whether a CRL is direct or indirect.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CrlAuthority {
    /// CRL only features entries that were issued by the CRL issuer
    Direct,
    /// CRL may feature entries that were issued by other than the CRL issuer
    Indirect,
}

/// The CrlReasons enum is used to identify CRL reasons.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CrlReasons {
    /// The CRL covers all CRL reasons
    AllReasons,
    /// The CRL covers only some CRL reasons
    SomeReasons,
}

/// CrlType features a set of enum values that determine the type of CRL based on evaluation of extensions.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CrlType {
    /// Indicates scope of CRL relative to distribution point and delta CRL indicator
    pub scope: CrlScope,
    /// Indicates if CRL is limited by IDP flags, i.e., end entity only, CA only
    pub coverage: CrlCoverage,
    /// Indicates if CRL only contains entries for certs issued by the CRL issuer or may contain entries from other issuers too
    pub authority: CrlAuthority,
    /// Indicates if CRL covers all CRL reasons or only some
    pub reasons: CrlReasons,
}

/// Struct to represent basic information regarding a CRL, including type of CRL, issuer, next
/// update, this update, etc.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CrlInfo {
    /// Classification of CRL per the CrlType enum
    pub type_info: CrlType,
    /// Time of this update as a Unix epoch value
    pub this_update: u64,
    /// Optional time of next update as a Unix epoch value
    pub next_update: Option<u64>,
    /// Issuer name in string form
    pub issuer_name: String,
    /// Issuer name in DER-encoded form
    pub issuer_name_blob: Vec<u8>,
    /// Signature algorithm in DER-encoded form
    pub sig_alg_blob: Vec<u8>,
    /// Optional extensions in DER-encoded form
    pub exts_blob: Option<Vec<u8>>,
    /// Optional issuing distribution point in string form
    pub idp_name: Option<String>,
    /// Optional issuing distribution point in DER-encoded form
    pub idp_blob: Option<Vec<u8>>,
    /// Optional subject key identifier in DER-encoded form
    pub skid: Option<Vec<u8>>,
    /// Optional filename in DER-encoded form
    pub filename: Option<String>,
    /// Optional source URI the CRL was fetched from (its CRL distribution point) -- a clue for where
    /// the full CRL can be re-obtained. Set when the CRL was fetched/stored via a URI; None for CRLs
    /// parsed without a known source (e.g. stapled) or loaded from disk.
    pub uri: Option<String>,
}

//CRL Processing Steps
//
//1)	Classify the target certificate as one of the 4 types of certificate
//2)	Determine the CRLs to obtain
//		a.	Identify the CRL types that apply (i.e. consult a static table w/ permissible CRLCOVERAGE and
//			CRLSCOPE values for each cert type)
//		b.	Identify locations from which to retrieve CRLs (i.e. certificate issuer directory entry vs.
//			CRLDP/freshestCRL)
//3)	Obtain CRL(s) - fail if no CRLs can be obtained
//4)	For each CRL, determine CRL and cert compatibility
//		a.	Confirm that the CRL type and cert type are compatible (discard CRL upon failure)
//		b.	Validate CRL issuer name (discard CRL upon failure)
//			i.	One of the names in a CRL DP crlIssuer field or the cert issuer shall match the CRL issuer.
//				If a CRL DP produced the match, set the active CRLDP state variable to the CRL DP containing
//				matching crlIssuer field.
//		c.	Validate DP (discard CRL upon failure)
//			i.	If the active CRL DP is set and an IDP w/distribution point field is present in the CRL, one
//				of the names in the active CRL DP shall match one of the names in the IDP DP.  If the active
//				CRL DP is not set and an IDP w/distribution point field is present, one of the names in a CRL
//				DP shall match one of the names in the IDP DP and the active CRL DP should be set to the CRL
//				DP that matches the IDP.
//			ii.	If reasons field is present in the active CRL DP, the onlySomeReasons field of the IDP shall
//				be absent or contain at least one of the reason codes asserted in the CRL DP
//		d.	Validate CRL authority (discard CRL upon failure)
//			i.	If the CRL issuer name does not match the cert issuer name, the indirectCRL field must be
//				present in the IDP.
//5)	For each CRL, determine CRL validity
//		a.	Currency check (discard CRL upon failure)
//		b.	Signature check (discard CRL upon failure)
//		c.	Validate delta scope (upon failure discard the CRL or set it aside pending acquisition of
//			additional CRLs)
//		d.	Process remaining CRL extensions
//6)	Determine if all necessary CRLs were obtained
//		a.	Process critical CRL DP and/or freshestCRL extensions (if requirements are not met try to obtain
//			additional CRLs or fail)
//		b.	Process reason codes of interest (If requirements are not met try to obtain additional CRLs or fail)
//		c.	Discard extraneous CRLs (optional)
//7)	For each CRL, review revocation notifications
//		a.	Check certificate status
//			i.	If certificate is found on a CRL, process any CRL entry extensions

/// fetch_crl takes a string that notionally contains a URI that may be used to retrieve a CRL.
#[cfg(feature = "remote")]
async fn fetch_crl(
    pe: &PkiEnvironment,
    uri: &str,
    timeout: Duration,
    max_bytes: u64,
    blocklist: Option<(&str, Duration)>,
) -> Result<Vec<u8>> {
    if !uri.starts_with("http") {
        debug!("Ignored non-HTTP URI presented for CRL retrieval",);
        return Err(Error::InvalidUriScheme);
    }

    if let Some((blocklist_file, _)) = blocklist {
        if crate::read_blocklist(blocklist_file).contains_key(uri) {
            info!("{uri} is on the blocklist");
            return Err(Error::UriOnBlocklist);
        }
    }

    // Errors rather than reporting ResourceUnchanged, which the previous code did: that status
    // means "the responder says nothing has changed", and reporting it for a client that could not
    // be built told the caller a fetch had succeeded with nothing new. It matters more now that a
    // consumer-registered client can be what failed -- which is also why this says so, like every
    // other failure here: the caller discards the error on the assumption it was reported.
    let client = match pe.http_client() {
        Ok(client) => client,
        Err(e) => {
            debug!("Failed to prepare an HTTP client to retrieve a CRL from {uri}: {e:?}");
            return Err(e);
        }
    };

    // Read saved last modified time, if any, for use in avoiding unnecessary download below
    let h = pe.get_last_modified(uri);

    let response = if let Some(h) = h {
        client
            .get(uri)
            .header("If-Modified-Since", h)
            .timeout(timeout)
            .send()
            .await
    } else {
        client.get(uri).timeout(timeout).send().await
    };
    match response {
        Ok(response) => {
            if let Some(note) = crate::builder::uri_utils::redirect_note(uri, response.url()) {
                info!("{note}");
            }
            // seen it before, skip it now
            if 304 == response.status() {
                return Err(Error::ResourceUnchanged);
            }

            let last_mod = response.headers().get("Last-Modified");
            if let Some(last_mod) = last_mod {
                if let Ok(last_modified) = last_mod.to_str() {
                    pe.set_last_modified(uri, last_modified);
                }
            }

            crate::builder::uri_utils::read_capped_body(response, max_bytes, uri).await
        }
        Err(e) => {
            debug!(
                "Failed to fetch CRL from {uri}: {}",
                crate::builder::uri_utils::error_chain(&e)
            );
            if let Some((blocklist_file, ttl)) = blocklist {
                crate::add_to_blocklist_file(blocklist_file, uri, ttl);
            }
            Err(Error::NetworkError)
        }
    }
}

/// `classify_certificate` takes a certificate and returns a [`CertRevType`] value.
///  - CaDp is returned if basicConstraints is present and isCA is true AND a CRL DP extension is present.
///  - EeDp is returned if basicConstraints is absent or isCA is false AND a CRL DP extension is present.
///  - Ca is returned if basicConstraints is present and isCA is true AND a CRL DP extension is not present.
///  - Ee is returned if basicConstraints is absent or isCA is false AND a CRL DP extension is not present.
fn classify_certificate(cert: &PDVCertificate) -> CertRevType {
    let is_ca = if let Ok(Some(PDVExtension::BasicConstraints(bc))) =
        cert.get_extension(&ID_CE_BASIC_CONSTRAINTS)
    {
        bc.ca
    } else {
        false
    };

    let has_crldp = matches!(
        cert.get_extension(&ID_CE_CRL_DISTRIBUTION_POINTS),
        Ok(Some(PDVExtension::CrlDistributionPoints(_crldp)))
    );
    if is_ca && has_crldp {
        CertRevType::CaDp
    } else if !is_ca && has_crldp {
        CertRevType::EeDp
    } else if is_ca {
        CertRevType::Ca
    } else {
        CertRevType::Ee
    }
}

// Flag set used in get_crl_info to classify a CRL
flags! {
    enum CrlQuestions: u8 {
        EeOnly,
        CaOnly,
        AaOnly,
        Delta,
        Partitioned,
        Indirect,
        SomeReasons
    }
}
type CrlQuestionairre = FlagSet<CrlQuestions>;

/// Takes a CRL and returns a CrlInfo structure with information about the CRL.
pub fn get_crl_info(crl: &CertificateList<Raw>) -> Result<CrlInfo> {
    let this_update = crl.tbs_cert_list.this_update.to_unix_duration().as_secs();
    let next_update = crl
        .tbs_cert_list
        .next_update
        .map(|nu| nu.to_unix_duration().as_secs());
    let issuer_name_blob = match crl.tbs_cert_list.issuer.to_der() {
        Ok(enc) => enc,
        Err(_e) => return Err(Error::Unrecognized),
    };
    let issuer_name = name_to_string(&crl.tbs_cert_list.issuer);
    let sig_alg_blob = match crl.signature_algorithm.to_der() {
        Ok(enc) => enc,
        Err(_e) => return Err(Error::Unrecognized),
    };
    let mut exts_blob = None;
    if let Some(crl_exts) = &crl.tbs_cert_list.crl_extensions {
        exts_blob = match crl_exts.to_der() {
            Ok(enc) => Some(enc),
            Err(_e) => return Err(Error::Unrecognized),
        };
    }
    let mut idp_blob: Option<Vec<u8>> = None;
    let mut idp_name: Option<String> = None;
    let mut skid: Option<Vec<u8>> = None;

    let mut questionnaire = CrlQuestionairre::default();

    //SKID, delta, idp
    if let Some(exts) = &crl.tbs_cert_list.crl_extensions {
        for ext in exts.iter() {
            match ext.extn_id {
                ID_CE_ISSUING_DISTRIBUTION_POINT => {
                    idp_blob = Some(ext.extn_value.as_bytes().to_vec());
                    let idp = match IssuingDistributionPoint::from_der(ext.extn_value.as_bytes()) {
                        Ok(idp) => idp,
                        Err(e) => {
                            return Err(Error::Asn1Error(e));
                        }
                    };

                    match &idp.distribution_point {
                        Some(DistributionPointName::FullName(gns)) => {
                            for gn in gns {
                                match gn {
                                    GeneralName::DirectoryName(dn) => {
                                        idp_name.replace(name_to_string(dn));
                                    }
                                    GeneralName::UniformResourceIdentifier(uri) => {
                                        let uri_str: &str = uri.as_ref();
                                        idp_name.replace(uri_str.to_string());
                                    }
                                    _ => {}
                                }

                                if idp_name.is_some() {
                                    break;
                                }
                            }
                            if idp_name.is_none() {
                                // not supporting non-DN/URI DPs
                                return Err(Error::Unrecognized);
                            }
                        }
                        Some(DistributionPointName::NameRelativeToCRLIssuer(rdn)) => {
                            // RFC 5280 5.2.5: the fragment is appended to the CRL issuer's name.
                            let mut rdns: x509_cert::name::RdnSequence =
                                crl.tbs_cert_list.issuer.clone().into();
                            rdns.push(rdn.clone());
                            idp_name.replace(name_to_string(&Name::hazmat_from_rdn_sequence(rdns)));
                        }
                        _ => {}
                    }

                    if idp.distribution_point.is_some() {
                        questionnaire |= CrlQuestions::Partitioned;
                    }

                    if idp.indirect_crl {
                        questionnaire |= CrlQuestions::Indirect;
                    }
                    if let Some(_osr) = &idp.only_some_reasons {
                        questionnaire |= CrlQuestions::SomeReasons;
                    }
                    if idp.only_contains_user_certs {
                        questionnaire |= CrlQuestions::EeOnly;
                    }
                    if idp.only_contains_ca_certs {
                        questionnaire |= CrlQuestions::CaOnly;
                    }
                    if idp.only_contains_attribute_certs {
                        questionnaire |= CrlQuestions::AaOnly;
                    }
                } // end ID_CE_ISSUING_DISTRIBUTION_POINT
                ID_CE_AUTHORITY_KEY_IDENTIFIER => {
                    if let Ok(akid) = AuthorityKeyIdentifier::from_der(ext.extn_value.as_bytes()) {
                        if let Some(kid) = akid.key_identifier {
                            skid = Some(kid.as_bytes().to_vec());
                        }
                    }
                }
                ID_CE_DELTA_CRL_INDICATOR => {
                    questionnaire |= CrlQuestions::Delta;
                }
                _ => {}
            }
        } //end iterating over extensions
    }

    if questionnaire.contains(CrlQuestions::AaOnly) {
        //XXX-DEFER Do work here to support ACRL, AARL, etc.
        return Err(CrlIncompatible);
    }

    let coverage = if questionnaire.contains(CrlQuestions::EeOnly) {
        CrlCoverage::EeOnly
    } else if questionnaire.contains(CrlQuestions::CaOnly) {
        CrlCoverage::CaOnly
    } else {
        CrlCoverage::All
    };

    let authority = if questionnaire.contains(CrlQuestions::Indirect) {
        CrlAuthority::Indirect
    } else {
        CrlAuthority::Direct
    };

    let scope = if questionnaire.contains(CrlQuestions::Partitioned) {
        if questionnaire.contains(CrlQuestions::Delta) {
            CrlScope::DeltaDp
        } else {
            CrlScope::Dp
        }
    } else if questionnaire.contains(CrlQuestions::Delta) {
        CrlScope::Delta
    } else {
        CrlScope::Complete
    };

    //determine reasons
    let reasons = if questionnaire.contains(CrlQuestions::SomeReasons) {
        CrlReasons::SomeReasons
    } else {
        CrlReasons::AllReasons
    };

    let type_info = CrlType {
        scope,
        coverage,
        authority,
        reasons,
    };

    Ok(CrlInfo {
        type_info,
        skid,
        this_update,
        next_update,
        issuer_name,
        issuer_name_blob,
        sig_alg_blob,
        exts_blob,
        idp_name,
        idp_blob,
        filename: None,
        uri: None,
    })
}

fn validate_crl_issuer_name(
    cert: &PDVCertificate,
    crl_info: &CrlInfo,
) -> Result<Option<DistributionPoint>> {
    // 4-b) Validate CRL issuer name (discard CRL upon failure)
    //			i.	One of the names in a CRL DP crlIssuer field or the cert issuer shall match the CRL issuer.
    //				If a CRL DP produced the match, set the active CRLDP state variable to the CRL DP containing
    //				matching crlIssuer field.
    let crl_dp = match cert.get_extension(&ID_CE_CRL_DISTRIBUTION_POINTS) {
        Ok(Some(PDVExtension::CrlDistributionPoints(crl_dp))) => crl_dp,
        _ => match Name::from_der(&crl_info.issuer_name_blob) {
            Ok(n) => {
                if compare_names(cert.decoded().tbs_certificate().issuer(), &n) {
                    return Ok(None);
                } else {
                    return Err(Error::CrlIncompatible);
                }
            }
            Err(e) => {
                return Err(Error::Asn1Error(e));
            }
        },
    };

    for dp in &crl_dp.0 {
        if let Some(gns) = &dp.crl_issuer {
            for gn in gns {
                if let GeneralName::DirectoryName(dn) = gn {
                    if let Ok(enc_dn) = dn.to_der() {
                        if enc_dn == crl_info.issuer_name_blob {
                            return Ok(Some(dp.clone()));
                        }
                    }
                }
            }
        }
    }

    match Name::from_der(&crl_info.issuer_name_blob) {
        Ok(n) => {
            if compare_names(cert.decoded().tbs_certificate().issuer(), &n) {
                Ok(None)
            } else {
                Err(Error::CrlIncompatible)
            }
        }
        Err(e) => Err(Error::Asn1Error(e)),
    }
}

fn is_general_name_in_general_names(lhs: &GeneralNames, rhs: &GeneralName) -> bool {
    for gn in lhs {
        if gn == rhs {
            return true;
        }
    }
    false
}

fn at_least_one_general_name_in_common(
    gns_from_crl_dp: &GeneralNames,
    gns_from_idp: &GeneralNames,
) -> bool {
    for gn in gns_from_idp {
        if is_general_name_in_general_names(gns_from_crl_dp, gn) {
            return true;
        }
    }
    false
}

fn validate_distribution_point(
    dps_from_crl_dp: Option<&CrlDistributionPoints>,
    crl_info: &CrlInfo,
    cert_type: CertRevType,
    target_cert: &PDVCertificate,
    collected_reasons: &mut ReasonFlags,
) -> Result<()> {
    let active_crl_dp = validate_crl_issuer_name(target_cert, crl_info)?;

    //	4-c) Validate DP (discard CRL upon failure)
    //			i.	If the active CRL DP is set and an IDP w/distribution point field is present in the CRL, one
    //				of the names in the active CRL DP shall match one of the names in the IDP DP.  If the active
    //				CRL DP is not set and an IDP w/distribution point field is present, one of the names in a CRL
    //				DP shall match one of the names in the IDP DP and the active CRL DP should be set to the CRL
    //				DP that matches the IDP.
    //			ii.	If reasons field is present in the active CRL DP, the onlySomeReasons field of the IDP shall
    //				be absent or contain at least one of the reason codes asserted in the CRL DP
    if CrlScope::Dp == crl_info.type_info.scope || CrlScope::DeltaDp == crl_info.type_info.scope {
        //if it's a DP CRL but cert has no CRL DP then return false
        if dps_from_crl_dp.is_none() || crl_info.idp_blob.is_none() {
            return Err(Error::CrlIncompatible);
        }

        let idp_blob = if let Some(idp_blob) = crl_info.idp_blob.as_ref() {
            idp_blob
        } else {
            return Err(Error::Unrecognized);
        };

        let idp = match IssuingDistributionPoint::from_der(idp_blob.as_slice()) {
            Ok(idp) => idp,
            Err(_e) => return Err(Error::Unrecognized),
        };

        let gns_from_idp = match idp.distribution_point {
            Some(DistributionPointName::FullName(gns)) => gns,
            Some(DistributionPointName::NameRelativeToCRLIssuer(_unsupported)) => {
                return Err(Error::Unrecognized)
            }
            _ => {
                // should not occur given the CsDp or CsDeltaDp scope
                return Err(Error::Unrecognized);
            }
        };

        let mut found_match = false;
        if let Some(ref crl_dp) = active_crl_dp {
            //if there's an active CRL DP, i.e. on that produced a match in the CRL issuer validation
            //function - then require that specific DP to match here

            if let Some(DistributionPointName::FullName(gns_from_crl_dp)) =
                &crl_dp.distribution_point
            {
                found_match = at_least_one_general_name_in_common(gns_from_crl_dp, &gns_from_idp);
            }
        } else {
            //otherwise, any DP can match
            if let Ok(Some(PDVExtension::CrlDistributionPoints(crl_dp))) =
                target_cert.get_extension(&ID_CE_CRL_DISTRIBUTION_POINTS)
            {
                for dp in &crl_dp.0 {
                    if let Some(DistributionPointName::FullName(gns_from_crl_dp)) =
                        &dp.distribution_point
                    {
                        found_match =
                            at_least_one_general_name_in_common(gns_from_crl_dp, &gns_from_idp);
                        if found_match {
                            break;
                        }
                    }
                }
            }
        }

        //if no DP matches then return false
        if !found_match {
            return Err(Error::CrlIncompatible);
        }
    }

    if let Some(idp_blob) = &crl_info.idp_blob {
        let idp = match IssuingDistributionPoint::from_der(idp_blob) {
            Ok(idp) => idp,
            Err(e) => return Err(Error::Asn1Error(e)),
        };

        if idp.only_contains_attribute_certs {
            return Err(Error::CrlIncompatible);
        }

        if idp.only_contains_ca_certs
            && (CertRevType::Ee == cert_type || CertRevType::EeDp == cert_type)
        {
            return Err(Error::CrlIncompatible);
        }

        if idp.only_contains_user_certs
            && (CertRevType::Ca == cert_type || CertRevType::CaDp == cert_type)
        {
            return Err(Error::CrlIncompatible);
        }

        if AllReasons != crl_info.type_info.reasons {
            if let Some(idp_reasons) = idp.only_some_reasons {
                *collected_reasons = idp_reasons;

                if let Some(ref crl_dp) = active_crl_dp {
                    if let Some(crldp_reasons) = crl_dp.reasons {
                        if (crldp_reasons & idp_reasons).is_empty() {
                            return Err(CrlIncompatible);
                        } else {
                            return Ok(());
                        }
                    }
                }
            }
        }
    }

    Ok(())
}

fn validate_crl_authority(target_cert: &PDVCertificate, crl_info: &CrlInfo) -> Result<bool> {
    //	d) Validate CRL authority (discard CRL upon failure)
    //		If the CRL issuer name does not match the cert issuer name, the indirectCRL field must be present
    //		in the IDP.

    let enc_iss = match target_cert.decoded().tbs_certificate().issuer().to_der() {
        Ok(b) => b,
        Err(_e) => return Err(Error::Unrecognized),
    };

    if enc_iss != crl_info.issuer_name_blob
        && CrlAuthority::Indirect != crl_info.type_info.authority
    {
        Ok(false)
    } else {
        Ok(true)
    }
}

/// Determines whether `crl_info` is in scope for `target_cert`, i.e., whether this CRL is one that
/// may be used to determine the revocation status of the certificate. This is the per-target
/// coverage affirmation performed by [`process_crl`] (certificate/CRL type compatibility,
/// distribution point validation and CRL authority validation), factored out so an in-memory
/// kept-CRL answer path can apply the identical checks. It does NOT check freshness (callers bound
/// that separately) nor consult the revoked list. Returns `Ok(())` when in scope.
pub(crate) fn crl_covers_cert(target_cert: &PDVCertificate, crl_info: &CrlInfo) -> Result<()> {
    let cert_type = classify_certificate(target_cert);
    let dps_from_crl_dp = match target_cert.get_extension(&ID_CE_CRL_DISTRIBUTION_POINTS) {
        Ok(Some(PDVExtension::CrlDistributionPoints(crldp))) => Some(crldp),
        _ => None,
    };

    let scope_ok = COMPATIBLE_SCOPE
        .get(cert_type as usize)
        .and_then(|row| row.get(crl_info.type_info.scope as usize))
        .copied()
        .unwrap_or(false);
    let coverage_ok = COMPATIBLE_COVERAGE
        .get(cert_type as usize)
        .and_then(|row| row.get(crl_info.type_info.coverage as usize))
        .copied()
        .unwrap_or(false);
    if !scope_ok || !coverage_ok {
        return Err(Error::CrlIncompatible);
    }

    // A CRL scoped by onlySomeReasons cannot establish that a certificate is not revoked: a
    // revocation for any other reason is listed on a CRL it does not cover, and coverage is not
    // accumulated across CRLs (RFC 5280 6.3.3 reasons_mask). Such a CRL is discarded, so the status
    // stays undetermined unless a CRL covering all reasons answers it.
    if CrlReasons::SomeReasons == crl_info.type_info.reasons {
        return Err(Error::CrlIncompatible);
    }

    let mut collected_reasons = ReasonFlags::new(0).map_err(|_| Error::Unrecognized)?;
    validate_distribution_point(
        dps_from_crl_dp,
        crl_info,
        cert_type,
        target_cert,
        &mut collected_reasons,
    )
    .map_err(|_| Error::CrlIncompatible)?;

    // matches process_crl: only an error discards the CRL (the returned bool is not consulted)
    validate_crl_authority(target_cert, crl_info).map_err(|_| Error::CrlIncompatible)?;

    Ok(())
}

/// True if a CRL of this type must not be answered from a kept in-memory serial list because a
/// single CRL cannot yield a complete determination: delta CRLs, indirect CRLs, and reason-
/// partitioned CRLs. Such CRLs fall through to full [`process_crl`] handling.
#[cfg(feature = "std")]
fn info_precludes_keeping(info: &CrlInfo) -> bool {
    matches!(info.type_info.scope, CrlScope::Delta | CrlScope::DeltaDp)
        || CrlAuthority::Indirect == info.type_info.authority
        || CrlReasons::SomeReasons == info.type_info.reasons
}

/// Builds the sorted list of revoked serial numbers for a verified CRL to keep in memory, or `None`
/// to decline keeping (so callers fall through to [`process_crl`]) for any CRL that cannot be
/// answered from a bare serial list: delta/indirect/reason-partitioned scope, an unrecognized
/// critical CRL extension, an indirect (certificate-issuer) entry extension, or an unrecognized
/// critical entry extension. Serial keys are the INTEGER value octets, which are canonical for a
/// DER-decoded serial number, so the same integer yields identical bytes on both build and lookup.
#[cfg(feature = "std")]
pub(crate) fn build_kept_serials(
    crl: &CertificateList<Raw>,
    info: &CrlInfo,
) -> Option<Vec<Vec<u8>>> {
    if info_precludes_keeping(info) {
        return None;
    }
    if let Some(exts) = &crl.tbs_cert_list.crl_extensions {
        if check_crl_extensions(exts).is_err() {
            return None;
        }
    }
    let mut serials = Vec::new();
    if let Some(revoked) = &crl.tbs_cert_list.revoked_certificates {
        for rc in revoked {
            if certificate_issuer_extension_present(rc) || check_entry_extensions(rc).is_err() {
                return None;
            }
            serials.push(rc.serial_number.as_bytes().to_vec());
        }
    }
    serials.sort();
    Some(serials)
}

/// Verifies the signature on a CRL using the presumed issuer's public key.
///
/// A failure here says the artifact could not be attributed to the issuer, not that the
/// certification path is bad, so no [`PathValidationStatus`] is recorded: the caller drops the CRL
/// and moves to the next revocation source, and the path status stays whatever the checks that do
/// judge the path have made it. Writing a status here would outlive the artifact it described,
/// because the results map holds one status and the last write wins.
fn verify_crl(pe: &PkiEnvironment, crl_buf: &[u8], issuer: &dyn SubjectNameAndKey) -> Result<()> {
    let Ok(defer_crl) = DeferDecodeSigned::from_der(crl_buf) else {
        return Err(Error::Unrecognized);
    };

    let r = pe.verify_signature_message(
        pe,
        &defer_crl.tbs_field,
        &defer_crl.signature,
        &defer_crl.signature_algorithm,
        issuer.spki(),
    );
    if let Err(e) = r {
        let subject = issuer
            .subject_name()
            .map(name_to_string)
            .unwrap_or_default();
        error!("CRL signature verification error for issuer {subject}: {e:?}");
        return Err(Error::PathValidation(
            PathValidationStatus::SignatureVerificationFailure,
        ));
    }
    Ok(())
}

/// check_entry_extensions inspects the extensions in a CRL entry. invalidity date and reasons are just
/// informational, so presence is fine. hold instruction is simply ignored with corresponding certificate
/// treated as revoked. Presence of any other critical extension is cause to discard the CRL. The
/// certificate issuer extension is assumed to have been checked already via  certificate_issuer_extension_present.
fn check_entry_extensions(rc: &RevokedCert<Raw>) -> Result<()> {
    let exts_to_ignore = [
        ID_CE_INVALIDITY_DATE,
        ID_CE_CRL_REASONS,
        ID_CE_HOLD_INSTRUCTION_CODE,
    ];
    if let Some(exts) = &rc.crl_entry_extensions {
        for e in exts {
            if e.critical && !exts_to_ignore.contains(&e.extn_id) {
                return Err(Error::CrlIncompatible);
            }
        }
    }
    Ok(())
}

pub(crate) fn check_crl_extensions(exts: &Extensions) -> Result<()> {
    let exts_to_ignore = [
        ID_CE_ISSUING_DISTRIBUTION_POINT,
        ID_CE_DELTA_CRL_INDICATOR,
        ID_CE_FRESHEST_CRL,
        ID_CE_CRL_NUMBER,
        ID_CE_AUTHORITY_KEY_IDENTIFIER,
    ];
    for e in exts {
        if e.critical && !exts_to_ignore.contains(&e.extn_id) {
            return Err(Error::CrlIncompatible);
        }
    }
    Ok(())
}

/// certificate_issuer_extension_present returns true if a certificate issuer extension is found
/// in the presented RevokedCert instance and false otherwise.
fn certificate_issuer_extension_present(rc: &RevokedCert<Raw>) -> bool {
    if let Some(exts) = &rc.crl_entry_extensions {
        for e in exts {
            if e.extn_id == ID_CE_CERTIFICATE_ISSUER {
                return true;
            }
        }
    }
    false
}

pub(crate) fn check_crl_validity(
    toi: TimeOfInterest,
    max_age: Duration,
    crl: &CertificateList<Raw>,
) -> Result<()> {
    if !toi.is_disabled() {
        let tu = crl.tbs_cert_list.this_update;
        if tu > toi {
            info!("Discarding CRL from {} as having this update time({}) later than time of interest ({})", name_to_string(&crl.tbs_cert_list.issuer),tu, toi);
            return Err(Error::CrlIncompatible);
        }
        match crl.tbs_cert_list.next_update {
            Some(nu) => {
                if nu.to_unix_duration().as_secs() < toi.as_unix_secs() {
                    info!("Discarding CRL from {} as having next update time({}) earlier than time of interest ({})", name_to_string(&crl.tbs_cert_list.issuer),tu, toi);
                    return Err(Error::CrlIncompatible);
                }
            }
            None => {
                // RFC 5280 5.1.2.5 requires conforming CRL issuers to include nextUpdate. Without it
                // the CRL has no upper time bound and an ancient copy would be treated as fresh. Bound
                // its age from thisUpdate by max_age (default 0 => reject as stale; a non-zero value
                // opts into a tolerance window).
                let age = toi
                    .as_unix_secs()
                    .saturating_sub(tu.to_unix_duration().as_secs());
                if age > max_age.as_secs() {
                    info!("Discarding CRL from {} as lacking a next update time and older than the configured maximum age", name_to_string(&crl.tbs_cert_list.issuer));
                    return Err(Error::CrlIncompatible);
                }
            }
        }
    }
    Ok(())
}

pub(crate) fn check_crl_sign(issuer: &dyn SubjectNameAndKey) -> Result<()> {
    match issuer.key_usage() {
        Some(ku) => {
            // RFC 5280 6.3.3(f): if a key usage extension is present, the cRLSign bit must be set
            // for the issuer to be a valid CRL issuer.
            if ku.0.contains(KeyUsages::CRLSign) {
                Ok(())
            } else {
                error!("crlSign is not set in key usage extension");
                Err(Error::PathValidation(PathValidationStatus::InvalidKeyUsage))
            }
        }
        None => {
            // A trust anchor is implicitly trusted to issue CRLs even without a key usage extension
            // (a name+SPKI anchor carries none). For an ordinary certificate, RFC 5280 6.3.3(f)
            // gates the cRLSign check on the key usage extension being present, but we reject an
            // absent one as a deliberate fail-closed choice: a modern CRL issuer always asserts
            // cRLSign.
            if issuer.is_implicitly_trusted() {
                Ok(())
            } else {
                error!("key usage extension is missing");
                Err(Error::PathValidation(PathValidationStatus::InvalidKeyUsage))
            }
        }
    }
}

/// process_crl takes a CRL that is processed relative to a given target certificate and issuer
/// certificate.
#[allow(clippy::too_many_arguments)]
pub(crate) fn process_crl(
    pe: &PkiEnvironment,
    cps: &CertificationPathSettings,
    cpr: &mut CertificationPathResults,
    target_cert: &PDVCertificate,
    issuer: &dyn SubjectNameAndKey,
    result_index: usize,
    crl_buf: &[u8],
    uri: Option<&str>,
) -> Result<()> {
    // Verify then parse and classify the CRL. A CRL that fails verification or the CRL-signing
    // authority check is deliberately not retained in the results (it may be bogus and would only be
    // re-saved on every pass); log the source URI when it is known so the CRL can still be re-obtained
    // for diagnosis. verify_crl/check_crl_sign already log the specific failure and issuer.
    if let Err(e) = verify_crl(pe, crl_buf, issuer).and_then(|_| check_crl_sign(issuer)) {
        if let Some(uri) = uri {
            error!("Discarding unverifiable CRL from {uri} with {e}");
        }
        return Err(e);
    }

    let crl = match CertificateList::<Raw>::from_der(crl_buf) {
        Ok(crl) => crl,
        Err(e) => {
            if let Some(uri) = uri {
                error!("Failed to parse CRL from {uri} with {e}");
            } else {
                error!("Failed to parse CRL from with {e}");
            }
            // No CrlInfo can be built from an unparseable CRL, so there is nothing to record here.
            return Err(Error::Asn1Error(e));
        }
    };

    // Build the compact metadata record once, right after the CRL parses. This is what gets recorded
    // in the results (as a failed or contributing CRL) in place of the full CRL body, and it carries
    // the URI clue for where the full CRL was obtained when one is available.
    let mut crl_info = get_crl_info(&crl)?;
    crl_info.uri = uri.map(|u| u.to_string());

    // RFC 5280 5.1.1.2/5.1.2: the signatureAlgorithm in the CRL must match the signature field
    // of the tbsCertList it protects, else the algorithm is subject to substitution (the cert
    // path performs the equivalent check in path_validator).
    if crl.signature_algorithm != crl.tbs_cert_list.signature {
        error!(
            "Discarding CRL from {} due to signatureAlgorithm ({:?}) / tbsCertList.signature ({:?}) mismatch",
            name_to_string(&crl.tbs_cert_list.issuer),
            crl.signature_algorithm,
            crl.tbs_cert_list.signature
        );
        cpr.add_failed_crl(crl_info.clone(), result_index);
        return Err(Error::PathValidation(
            PathValidationStatus::SignatureVerificationFailure,
        ));
    }

    if let Some(uri) = uri {
        // Debug rather than error: an environment with no CRL source registered keeps nothing, which
        // is a configuration rather than a failure, and the CRL is used for this check either way.
        if let Err(e) = pe.add_crl(crl_buf, &crl, uri) {
            debug!("Failed to save CRL with: {e}");
        }
    }

    // Reject a stale or future-dated CRL before offering it for in-memory retention so kept entries
    // are never sourced from a CRL the inline path would have refused. Unlike crl_covers_cert below,
    // this check is target-independent, so its verdict applies to every certificate the kept entries
    // might later answer.
    let toi = cps.get_time_of_interest();
    if let Err(e) = check_crl_validity(toi, cps.get_revocation_max_age(), &crl) {
        cpr.add_failed_crl(crl_info.clone(), result_index);
        return Err(e);
    }

    // Offer the just-verified CRL to any store configured to keep its entries in memory so that
    // subsequent certificates under the same scope are answered from get_status without re-entering
    // process_crl. This is the only path that populates the in-memory kept serials, which is why a
    // cold-loaded store cannot serve them until a CRL has been verified here at least once. The
    // kept entries are bound to the issuer whose key verified the CRL just above.
    pe.keep_verified_crl(
        crl_buf,
        &crl,
        issuer,
        toi,
        cps.get_retain_expired_kept_crls(),
    );

    //4-a) confirm that the CRL type and cert type are compatible
    //4-b) validate the CRL issuer name (validate_crl_issuer_name is called by validate_distribution_point)
    //4-c) Validate DP (sets activeCRLDP as necessary)
    //4-d) Validate CRL authority
    if let Err(e) = crl_covers_cert(target_cert, &crl_info) {
        info!(
            "Discarding CRL from {} as not covering certificate issued to {}",
            name_to_string(&crl.tbs_cert_list.issuer),
            name_to_string(target_cert.decoded().tbs_certificate().subject())
        );
        cpr.add_failed_crl(crl_info.clone(), result_index);
        return Err(e);
    }

    if let Some(exts) = &crl.tbs_cert_list.crl_extensions {
        if let Err(_e) = check_crl_extensions(exts) {
            info!(
                "Discarding CRL from {} due to unrecognized critical extension",
                name_to_string(&crl.tbs_cert_list.issuer)
            );
            cpr.add_failed_crl(crl_info.clone(), result_index);
            return Err(Error::UnsupportedCrlExtension);
        }
    }

    if let Some(revoked_certificates) = crl.tbs_cert_list.revoked_certificates {
        // Every entry is examined, including those after the target's: RFC 5280 §5.3 says a CRL
        // carrying a critical entry extension the application cannot process MUST NOT be used for
        // any certificate, so one such entry anywhere makes the whole CRL unusable.
        let mut target_entry = None;
        for rc in revoked_certificates {
            // if we detect this is an indirect CRL (which should have been determined already by inspection
            // of the IDP extension, discard the CRL. this check could be dropped is sufficiently satisfied
            // that IDP check is good enough.
            if certificate_issuer_extension_present(&rc) {
                info!("Discarding CRL from {} due to presence of certificate issuer CRL entry extension", name_to_string(&crl.tbs_cert_list.issuer));
                cpr.add_failed_crl(crl_info.clone(), result_index);
                return Err(Error::UnsupportedIndirectCrl);
            }

            if check_entry_extensions(&rc).is_err() {
                info!(
                    "Discarding CRL from {} due to unrecognized critical CRL entry extension",
                    name_to_string(&crl.tbs_cert_list.issuer)
                );
                cpr.add_failed_crl(crl_info.clone(), result_index);
                return Err(Error::UnsupportedCrlEntryExtension);
            }

            if target_entry.is_none()
                && rc
                    .serial_number
                    .der_cmp(target_cert.decoded().tbs_certificate().serial_number())
                    .map(|ordering| matches!(ordering, core::cmp::Ordering::Equal))
                    .unwrap_or_default()
            {
                target_entry = Some(rc);
            }
        }

        if let Some(rc) = target_entry {
            match rc.to_der() {
                Ok(enc_entry) => {
                    cpr.add_crl_entry(enc_entry, result_index);
                }
                Err(e) => {
                    error!("Failed to encode CRL entry for logging purposes with: {e}");
                }
            };

            if let Some(nu) = crl.tbs_cert_list.next_update {
                pe.add_status(
                    target_cert,
                    issuer,
                    nu.to_unix_duration().as_secs(),
                    PathValidationStatus::CertificateRevoked,
                );
            }
            cpr.add_crl(crl_info.clone(), result_index);
            return Err(Error::PathValidation(
                PathValidationStatus::CertificateRevoked,
            ));
        }
    }
    if let Some(nu) = crl.tbs_cert_list.next_update {
        pe.add_status(
            target_cert,
            issuer,
            nu.to_unix_duration().as_secs(),
            PathValidationStatus::Valid,
        );
    }
    cpr.add_crl(crl_info.clone(), result_index);
    Ok(())
}

#[cfg(feature = "remote")]
pub(crate) async fn check_revocation_crl_remote(
    pe: &PkiEnvironment,
    cps: &CertificationPathSettings,
    cpr: &mut CertificationPathResults,
    target_cert: &PDVCertificate,
    issuer: &dyn SubjectNameAndKey,
    pos: usize,
) -> PathValidationStatus {
    let mut target_status = PathValidationStatus::RevocationStatusNotDetermined;
    let cur_cert_subject = name_to_string(target_cert.decoded().tbs_certificate().subject());
    let mut crl_dps = vec![];
    collect_crl_dp_uris(target_cert, &mut crl_dps);
    if crl_dps.is_empty() {
        info!(
            "No CRL DPs found for {}",
            name_to_string(target_cert.decoded().tbs_certificate().subject())
        );
    } else {
        let timeout = cps.get_crl_timeout();
        let max_bytes = cps.get_max_crl_fetch_bytes();
        // The blocklist the certificate fetches keep in the download folder, with their expiry, so
        // a distribution point that failed is skipped until the entry lapses. No download folder,
        // no blocklist.
        let blocklist_file = cps
            .get_download_folder()
            .map(|folder| crate::uri_blocklist_file(&folder));
        let blocklist = blocklist_file
            .as_deref()
            .map(|f| (f, cps.get_uri_blocklist_ttl()));
        for crl_dp in crl_dps {
            debug!("Fetching CRL from {}", crl_dp.as_str());

            // Discarded rather than logged: fetch_crl reports each of its own failures, with
            // the URI and the underlying cause, so logging again here would say it twice. The one
            // outcome it does not log is a 304, which is not a failure.
            let crl = match fetch_crl(pe, crl_dp.as_str(), timeout, max_bytes, blocklist).await {
                Ok(crl) => crl,
                Err(_e) => continue,
            };
            debug!("Processing CRL from {}", crl_dp.as_str());

            match process_crl(
                pe,
                cps,
                cpr,
                target_cert,
                issuer,
                pos,
                &crl,
                Some(crl_dp.as_str()),
            ) {
                Ok(_ok) => {
                    // process_crl records the contributing CRL (as compact CrlInfo) in the results.
                    info!("Determined revocation status (valid) using CRL for certificate issued to {cur_cert_subject}");
                    target_status = PathValidationStatus::Valid;
                }
                Err(e) => {
                    if Error::PathValidation(PathValidationStatus::CertificateRevoked) == e {
                        info!("Determined revocation status (revoked) using CRL for certificate issued to {cur_cert_subject}");
                        return PathValidationStatus::CertificateRevoked;
                    } else {
                        info!("Failed to determine revocation status using CRL for certificate issued to {cur_cert_subject} with {e}");
                    }
                }
            };
            if target_status != PathValidationStatus::RevocationStatusNotDetermined {
                // no need to consider additional CRL DPs
                break;
            }
        }
    }
    target_status
}

#[cfg(test)]
mod tests {
    // fetch_crl's outcomes: a non-HTTP scheme and a blocklisted URI are both rejected without a
    // request, a first fetch returns the body and records the server's Last-Modified value, a
    // second fetch sends that value back as If-Modified-Since and takes the 304 as ResourceUnchanged,
    // and a third -- made after the CRL that value describes is deleted -- goes out unconditional and
    // returns the body, because a 304 answering it could not be honoured from the folder.
    //
    // The last two are served from loopback rather than from a live CA. That keeps a transient
    // network error from failing the test, and it also lets the conditional request be inspected
    // directly instead of inferred from a real server choosing to answer 304.
    #[cfg(feature = "remote")]
    #[tokio::test]
    async fn fetch_crl_test() {
        use crate::util::Error;
        use crate::PkiEnvironment;
        use crate::{
            crl::fetch_crl, CheckRemoteResource, RemoteStatus, PS_MAX_CRL_FETCH_BYTES_DEFAULT,
        };
        use std::sync::{Arc, Mutex};
        use std::time::Duration;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio::net::TcpListener;

        const LAST_MODIFIED: &str = "Wed, 11 Mar 2026 12:00:00 GMT";
        // Contents are irrelevant: fetch_crl returns the bytes without parsing them as a CRL.
        const BODY: &[u8] = b"a body that stands in for a CRL";

        let mut pe = PkiEnvironment::default();
        pe.clear_all_callbacks();
        pe.populate_5280_pki_environment();

        // A folder of its own for the last-modified map, so the test neither reads a value a prior
        // run left behind nor writes one into the source tree.
        let lmm_dir = tempfile::tempdir().unwrap();
        let lmm_folder = lmm_dir.path().to_str().unwrap().to_string();
        pe.add_check_remote(Box::new(RemoteStatus::new(&lmm_folder)));

        // Answers a conditional request with 304 and any other with the body, and keeps each request
        // it saw so the If-Modified-Since header can be checked below. Connection: close keeps the
        // fetches from sharing a socket, so each arrives as its own accept.
        let requests = Arc::new(Mutex::new(Vec::<String>::new()));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri = format!("http://{}/crl", listener.local_addr().unwrap());
        let seen = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let mut buf = [0u8; 2048];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]).to_string();
                let conditional = request.to_ascii_lowercase().contains("if-modified-since:");
                if let Ok(mut seen) = seen.lock() {
                    seen.push(request);
                }
                let response = if conditional {
                    b"HTTP/1.1 304 Not Modified\r\nConnection: close\r\n\r\n".to_vec()
                } else {
                    let mut v = format!(
                        "HTTP/1.1 200 OK\r\nLast-Modified: {LAST_MODIFIED}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        BODY.len()
                    )
                    .into_bytes();
                    v.extend_from_slice(BODY);
                    v
                };
                let _ = sock.write_all(&response).await;
                let _ = sock.shutdown().await;
            }
        });

        let r = fetch_crl(
            &pe,
            "ldap://ldap.scheme/",
            Duration::from_secs(60),
            PS_MAX_CRL_FETCH_BYTES_DEFAULT,
            None,
        )
        .await;
        assert_eq!(Some(Error::InvalidUriScheme), r.err());

        // The blocklist is the download folder's file, shared with the certificate fetches.
        // The blocklist is the download folder's file, shared with the certificate fetches.
        let blocklist_file = crate::uri_blocklist_file(&lmm_folder);
        let ttl = Duration::from_secs(3600);
        crate::add_to_blocklist_file(&blocklist_file, "http://blocklist.test", ttl);
        let r = fetch_crl(
            &pe,
            "http://blocklist.test",
            Duration::from_secs(60),
            PS_MAX_CRL_FETCH_BYTES_DEFAULT,
            Some((&blocklist_file, ttl)),
        )
        .await;
        assert_eq!(Some(Error::UriOnBlocklist), r.err());

        let r = fetch_crl(
            &pe,
            &uri,
            Duration::from_secs(60),
            PS_MAX_CRL_FETCH_BYTES_DEFAULT,
            None,
        )
        .await;
        assert_eq!(BODY, r.unwrap().as_slice());

        // What `add_crl` would have written for this URI. `fetch_crl` records the Last-Modified
        // value but does not write the CRL -- the caller does, on the way through `process_crl` --
        // and a stored value is only offered while the file it describes is there, so the
        // conditional request below depends on this existing.
        let crl_file = {
            use crate::buffer_to_hex;
            use sha2::{Digest, Sha256};
            let hex = buffer_to_hex(Sha256::digest(&uri).to_vec().as_slice());
            std::path::Path::new(&lmm_folder).join(format!("{hex}.crl"))
        };
        std::fs::write(&crl_file, BODY).unwrap();

        let r = fetch_crl(
            &pe,
            &uri,
            Duration::from_secs(60),
            PS_MAX_CRL_FETCH_BYTES_DEFAULT,
            None,
        )
        .await;
        assert_eq!(Some(Error::ResourceUnchanged), r.err());

        // With the CRL gone the stored value is not offered, so the request goes out unconditional
        // and the body comes back rather than a 304 that would leave the run with no CRL at all.
        std::fs::remove_file(&crl_file).unwrap();
        let r = fetch_crl(
            &pe,
            &uri,
            Duration::from_secs(60),
            PS_MAX_CRL_FETCH_BYTES_DEFAULT,
            None,
        )
        .await;
        assert_eq!(BODY, r.unwrap().as_slice());

        // Compared in lower case throughout: hyper writes header names lower case on the wire.
        let requests = requests.lock().unwrap();
        assert_eq!(3, requests.len());
        let first = requests[0].to_ascii_lowercase();
        let second = requests[1].to_ascii_lowercase();
        let third = requests[2].to_ascii_lowercase();
        assert!(!first.contains("if-modified-since"));
        assert!(second.contains(&format!(
            "if-modified-since: {}",
            LAST_MODIFIED.to_ascii_lowercase()
        )));
        // The point of the third: a stored value whose CRL is gone must not produce a conditional
        // request, because a 304 answering it cannot be honoured from the folder.
        assert!(!third.contains("if-modified-since"));

        // The third fetch returned a body, so the caller would have written the CRL again on its
        // way through `process_crl`. Restored here to stand in for that, because the value below is
        // only offered while the file it describes is present.
        std::fs::write(&crl_file, BODY).unwrap();

        // A second RemoteStatus over the same folder reads the map the first one wrote, which is
        // what persisting it is for: a later run must not re-download what this one already holds.
        let reloaded = RemoteStatus::new(&lmm_folder);
        assert_eq!(
            Some(LAST_MODIFIED.to_string()),
            reloaded.get_last_modified(&uri)
        );

        // And it stops being offered the moment that file goes, which is the whole of the rule this
        // test's third fetch exercises.
        std::fs::remove_file(&crl_file).unwrap();
        assert_eq!(None, reloaded.get_last_modified(&uri));
    }

    // The ingest cap must reject an oversized CRL body -- from the declared Content-Length where the
    // server sends one, and while streaming where it does not. Both shapes come from a loopback
    // server: the cap is a property of the body reader rather than of any particular CRL, and
    // pointing this at a live CRL host made it the one test here that a transient network error, or
    // a host that throttled the neighbouring test's fetches, could fail.
    #[cfg(feature = "remote")]
    #[tokio::test]
    async fn fetch_crl_respects_size_cap() {
        use crate::util::Error;
        use crate::PkiEnvironment;
        use crate::{crl::fetch_crl, PS_MAX_CRL_FETCH_BYTES_DEFAULT};
        use std::time::Duration;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio::net::TcpListener;

        // Contents are irrelevant: the cap trips before anything is parsed as a CRL.
        const BODY: &[u8] = b"a body that stands in for a CRL";

        // Serves `response` verbatim to one client, and returns the URI that reaches it.
        async fn serve_once(response: Vec<u8>) -> String {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let uri = format!("http://{}/crl", listener.local_addr().unwrap());
            tokio::spawn(async move {
                if let Ok((mut sock, _)) = listener.accept().await {
                    // Read the request before answering. Writing and closing on an unread socket
                    // can reach the client as a reset rather than as the response.
                    let mut req = [0u8; 1024];
                    let _ = sock.read(&mut req).await;
                    let _ = sock.write_all(&response).await;
                    let _ = sock.shutdown().await;
                }
            });
            uri
        }

        fn with_content_length(body: &[u8]) -> Vec<u8> {
            let mut v =
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
            v.extend_from_slice(body);
            v
        }

        // Chunked, so the response carries no Content-Length and the cap has to trip mid-stream.
        fn chunked(body: &[u8]) -> Vec<u8> {
            let mut v = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            v.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
            v.extend_from_slice(body);
            v.extend_from_slice(b"\r\n0\r\n\r\n");
            v
        }

        let mut pe = PkiEnvironment::default();
        pe.clear_all_callbacks();
        pe.populate_5280_pki_environment();
        // No check_remote callback is registered, so nothing reads or writes a last-modified value
        // and no map persisted by an earlier run can turn a fetch here into a 304.

        let uri = serve_once(with_content_length(BODY)).await;
        let r = fetch_crl(&pe, &uri, Duration::from_secs(60), 1, None).await;
        assert_eq!(Some(Error::LengthError), r.err());

        let uri = serve_once(chunked(BODY)).await;
        let r = fetch_crl(&pe, &uri, Duration::from_secs(60), 1, None).await;
        assert_eq!(Some(Error::LengthError), r.err());

        // The same body under a cap that accommodates it comes back whole, so the two rejections
        // above are the cap talking and not the loopback server failing to answer.
        let uri = serve_once(chunked(BODY)).await;
        let r = fetch_crl(
            &pe,
            &uri,
            Duration::from_secs(60),
            PS_MAX_CRL_FETCH_BYTES_DEFAULT,
            None,
        )
        .await;
        assert_eq!(BODY, r.unwrap().as_slice());
    }

    // A CRL that omits nextUpdate has no upper time bound. check_crl_validity caps its age
    // from thisUpdate by the supplied max age (0 => fail closed). A CRL that carries nextUpdate is
    // unaffected. Store indexing passes Duration::MAX here to stay lenient; path validation passes
    // PS_REVOCATION_MAX_AGE.
    #[cfg(feature = "std")]
    #[test]
    fn check_crl_validity_missing_next_update_honours_max_age() {
        use super::check_crl_validity;
        use crate::TimeOfInterest;
        use core::time::Duration;
        use der::Decode;
        use x509_cert::{certificate::Raw, crl::CertificateList};

        let mut crl = CertificateList::<Raw>::from_der(include_bytes!(
            "../../tests/examples/PKITS_data_2048/crls/GoodCACRL.crl"
        ))
        .unwrap();
        let tu_secs = crl.tbs_cert_list.this_update.to_unix_duration().as_secs();
        // 10 days after thisUpdate (2010), well inside the original nextUpdate (2030).
        let toi = TimeOfInterest::from_unix_secs(tu_secs + 10 * 86400).unwrap();

        // nextUpdate present: valid regardless of max age (unchanged path).
        assert!(check_crl_validity(toi, Duration::from_secs(0), &crl).is_ok());

        // nextUpdate absent: fail closed by default, tolerated under a wide window, rejected once the
        // window is shorter than the CRL's age (~10 days).
        crl.tbs_cert_list.next_update = None;
        assert!(
            check_crl_validity(toi, Duration::from_secs(0), &crl).is_err(),
            "absent nextUpdate must fail closed by default"
        );
        assert!(
            check_crl_validity(toi, Duration::from_secs(30 * 86400), &crl).is_ok(),
            "a wide max age tolerates an absent nextUpdate"
        );
        assert!(
            check_crl_validity(toi, Duration::from_secs(5 * 86400), &crl).is_err(),
            "a max age shorter than the CRL age rejects it"
        );

        // A time of interest before thisUpdate is still rejected as incompatible even with a wide
        // max age (the future-CRL guard is independent of the nextUpdate handling).
        let before = TimeOfInterest::from_unix_secs(tu_secs - 86400).unwrap();
        assert!(check_crl_validity(before, Duration::MAX, &crl).is_err());
    }
}
