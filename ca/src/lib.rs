//! Certificate authorities (signature and user-authentication hierarchies). Not built yet: issue 3.
