//! Validation service for verifiers: OCSP, CRL distribution, path validation. Not built yet: issue 5.
