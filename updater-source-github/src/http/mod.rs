//! The HTTP layer shared by both sources and the health check: settings,
//! the HTTPS-only rule, a client that lives outside any tokio runtime,
//! manual redirects that drop credentials across origins, ETag caching,
//! rate-limit detection, retries and bounded, resumable downloads.

mod budget;
mod client;
mod download;
mod etag_cache;
mod ranges;
mod rate_limit;
mod settings;
mod transport_security;

pub(crate) use budget::human;
pub(crate) use client::{DetachedClient, HttpClient, body_error_text, detached_client};
pub(crate) use download::download_to;
pub(crate) use ranges::download_ranges_to;
pub use settings::{
    DEFAULT_MINIMUM_SPEED, DEFAULT_MINIMUM_SPEED_WINDOW, DEFAULT_TRANSFER_DEADLINE, HttpSettings,
    RetryPolicy,
};
pub(crate) use transport_security::{check_url, parse_url};
