//! Limit admin requests per token, and public requests per client address, with token
//! buckets.
//!
//! tower's `RateLimit` counts per service clone, and axum clones services per request,
//! so it would not limit anything here: this is a small bucket map keyed by the SHA-256
//! of the token a request authenticated with, bounded by [`RATE_BUCKETS_MAX`].

use crate::auth::TokenId;
use crate::http::json_error;
use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderValue, StatusCode, header::RETRY_AFTER},
    middleware::Next,
    response::Response,
};
use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// Token buckets kept at most; the least recently used is dropped beyond this.
pub const RATE_BUCKETS_MAX: usize = 1024;

struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// A token bucket per key: `burst` requests at once, refilled at `per_second`.
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<[u8; 32], Bucket>>,
}

impl RateLimiter {
    /// A limiter allowing `burst` requests at once and `per_second` on average per key.
    pub fn new(per_second: u32, burst: u32) -> RateLimiter {
        assert!(per_second > 0 && burst > 0, "rate limits are checked by the manifest");
        RateLimiter { per_second: f64::from(per_second), burst: f64::from(burst), buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one request from `key`'s bucket at `now`, or says how long to wait.
    pub fn check(&self, key: [u8; 32], now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !buckets.contains_key(&key) && buckets.len() >= RATE_BUCKETS_MAX {
            Self::evict_least_recent(&mut buckets);
        }
        let bucket = buckets.entry(key).or_insert(Bucket { tokens: self.burst, updated: now });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.per_second))
    }

    fn evict_least_recent(buckets: &mut HashMap<[u8; 32], Bucket>) {
        if let Some(oldest) = buckets.iter().min_by_key(|(_, bucket)| bucket.updated).map(|(key, _)| *key) {
            buckets.remove(&oldest);
        }
    }
}

/// Middleware (inside [`crate::auth::require_token`]): 429 with `retry-after` when the
/// request's token is over its rate.
pub async fn limit_per_token(State(limiter): State<Arc<RateLimiter>>, request: Request, next: Next) -> Response {
    let key = request.extensions().get::<TokenId>().map(|id| id.0).unwrap_or_default();
    limit(&limiter, key, "admin", request, next).await
}

/// Middleware on the public routes: 429 with `retry-after` when the client's address is
/// over its rate, so that one client hammering queries cannot crowd out the others or
/// keep the node loop busy. Requests without a known address (in-process routers in
/// tests) share one bucket.
pub async fn limit_per_client(State(limiter): State<Arc<RateLimiter>>, request: Request, next: Next) -> Response {
    let address = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip());
    limit(&limiter, client_key(address), "public", request, next).await
}

/// A client's bucket key: its IP address, padded.
fn client_key(address: Option<IpAddr>) -> [u8; 32] {
    let mut key = [0; 32];
    match address {
        Some(IpAddr::V4(v4)) => key[..4].copy_from_slice(&v4.octets()),
        Some(IpAddr::V6(v6)) => key[..16].copy_from_slice(&v6.octets()),
        None => {}
    }
    key[31] = match address {
        Some(IpAddr::V4(_)) => 4,
        Some(IpAddr::V6(_)) => 6,
        None => 0,
    };
    key
}

async fn limit(limiter: &RateLimiter, key: [u8; 32], what: &str, request: Request, next: Next) -> Response {
    match limiter.check(key, Instant::now()) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
            let mut response = json_error(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "{what} rate limit: {} requests per second, burst {}; retry after {seconds} s",
                    limiter.per_second, limiter.burst
                ),
            );
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(seconds));
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_passes_then_requests_wait_for_the_refill() {
        let limiter = RateLimiter::new(5, 3);
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check([1; 32], start), Ok(()));
        }
        let wait = limiter.check([1; 32], start).unwrap_err();
        assert!((wait.as_secs_f64() - 0.2).abs() < 1e-6, "{wait:?}");
        assert_eq!(limiter.check([2; 32], start), Ok(()), "another token has its own bucket");
        assert_eq!(limiter.check([1; 32], start + Duration::from_millis(200)), Ok(()));
        assert!(limiter.check([1; 32], start + Duration::from_millis(200)).is_err());
        for _ in 0..3 {
            assert_eq!(limiter.check([1; 32], start + Duration::from_secs(10)), Ok(()), "refill stops at the burst");
        }
        assert!(limiter.check([1; 32], start + Duration::from_secs(10)).is_err());
    }

    #[test]
    fn bucket_map_is_bounded() {
        let limiter = RateLimiter::new(1, 1);
        let start = Instant::now();
        for i in 0..(RATE_BUCKETS_MAX as u32 + 10) {
            let mut key = [0u8; 32];
            key[..4].copy_from_slice(&i.to_le_bytes());
            let _ = limiter.check(key, start + Duration::from_millis(u64::from(i)));
        }
        assert_eq!(limiter.buckets.lock().unwrap().len(), RATE_BUCKETS_MAX);
    }
}
