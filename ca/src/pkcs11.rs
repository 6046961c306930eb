//! PKCS#11 keys (placeholder while being written).
