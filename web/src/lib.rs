//! What every operator page of the project shares: one layout (Japanese, keyboard-first), the
//! stylesheet and htmx served from the binary, the security headers (a strict content security
//! policy, no caching, no framing), CSRF tokens bound to a session or a party, browser sessions
//! in Secure/HttpOnly/SameSite=Strict cookies, and the message page a clerk or operator sees
//! for every error with a next step.
//!
//! Pages are rendered on the server with `maud`; scripts are `'self'` only (htmx, for partial
//! updates such as the card-issuance progress) and no page has an inline script or style.

pub mod assets;
pub mod csrf;
pub mod page;
pub mod session;

pub use assets::{assets_router, security_headers};
pub use csrf::{Csrf, CsrfError};
pub use page::{Nav, layout, message};
pub use session::{Sessions, cookie_value};
