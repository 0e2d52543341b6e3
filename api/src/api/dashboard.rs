//! Serve the operator's web dashboard: one page and its script, style sheet and icon,
//! compiled into the binary (`api/dashboard/`), so a node needs no files and no network
//! to show it.
//!
//! `GET /` is the page; its assets live under `/dashboard/<version>/<file>`, where the
//! version is a hash of their bytes: the browser may keep them for a year (a new binary
//! with other assets names other URLs), while the page itself is revalidated each time
//! (`no-cache` with an `ETag`). Every answer carries a strict Content-Security-Policy:
//! scripts, styles and connections from this origin only, no inline script or style, no
//! framing. The page reads the public JSON API; admin calls carry the token the operator
//! types in, as an `Authorization` header, never in a URL (see `app.js`).

use axum::{
    Router,
    extract::Path,
    http::{
        HeaderMap, HeaderValue, StatusCode,
        header::{
            CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, REFERRER_POLICY,
            X_CONTENT_TYPE_OPTIONS,
        },
    },
    response::{IntoResponse, Response},
    routing::get,
};
use std::sync::LazyLock;

/// What the page may load and connect to: this origin only ('self' covers the block
/// stream's `ws:` URL on the same host and port), nothing inline, no frames, no forms.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
/// How long a browser keeps a versioned asset.
const ASSET_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";
/// Where `index.html` names the versioned asset directory.
const ASSETS_PLACEHOLDER: &str = "{{assets}}";

/// A file of the dashboard.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// Everything the page loads besides itself.
const ASSETS: [Asset; 3] = [
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../dashboard/app.js"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../dashboard/style.css"),
    },
    Asset { name: "icon.svg", content_type: "image/svg+xml", bytes: include_bytes!("../../dashboard/icon.svg") },
];

/// The first 12 hex digits of the SHA-256 of every asset: changes whenever one does.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    let all: Vec<u8> = ASSETS.iter().flat_map(|asset| asset.bytes.iter().copied()).collect();
    crate::crypto::sha256(&all).to_hex()[..12].to_string()
});

/// The page, with its asset URLs pointing at this version.
static INDEX: LazyLock<String> = LazyLock::new(|| {
    include_str!("../../dashboard/index.html").replace(ASSETS_PLACEHOLDER, &format!("/dashboard/{}", *VERSION))
});

/// The dashboard's routes (they use no state, so any router can take them).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/", get(index)).route("/dashboard/{version}/{file}", get(asset))
}

/// `GET /`: the page, revalidated on every visit (304 when the browser has it).
async fn index(headers: HeaderMap) -> Response {
    let etag = format!("\"{}\"", *VERSION);
    let cached = headers.get(IF_NONE_MATCH).is_some_and(|value| value.as_bytes() == etag.as_bytes());
    let status = if cached { StatusCode::NOT_MODIFIED } else { StatusCode::OK };
    let body = if cached { String::new() } else { INDEX.clone() };
    let mut response = (status, body).into_response();
    set_headers(response.headers_mut(), "text/html; charset=utf-8", "no-cache");
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(ETAG, value);
    }
    response
}

/// `GET /dashboard/{version}/{file}`: an asset. A page of another version (a browser
/// that kept the page of an earlier binary) still gets today's file, but not to keep.
async fn asset(Path((version, file)): Path<(String, String)>) -> Response {
    let Some(asset) = ASSETS.iter().find(|asset| asset.name == file) else {
        return crate::http::json_error(StatusCode::NOT_FOUND, format!("no dashboard file \"{file}\""));
    };
    let cache_control = if version == *VERSION { ASSET_CACHE_CONTROL } else { "no-cache" };
    let mut response = asset.bytes.into_response();
    set_headers(response.headers_mut(), asset.content_type, cache_control);
    response
}

fn set_headers(headers: &mut HeaderMap, content_type: &'static str, cache_control: &'static str) {
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache_control));
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    async fn get(path: &str, if_none_match: Option<&str>) -> Response {
        let mut request = axum::http::Request::get(path);
        if let Some(etag) = if_none_match {
            request = request.header(IF_NONE_MATCH, etag);
        }
        routes::<()>().oneshot(request.body(Body::empty()).unwrap()).await.unwrap()
    }

    async fn text(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn header(response: &Response, name: axum::http::HeaderName) -> &str {
        response.headers().get(name).and_then(|value| value.to_str().ok()).unwrap_or_default()
    }

    #[tokio::test]
    async fn the_page_names_its_assets_by_version_and_is_revalidated() {
        let page = get("/", None).await;
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(header(&page, CONTENT_TYPE), "text/html; charset=utf-8");
        assert_eq!(header(&page, CACHE_CONTROL), "no-cache");
        assert_eq!(header(&page, CONTENT_SECURITY_POLICY), CONTENT_SECURITY_POLICY_VALUE);
        let etag = header(&page, ETAG).to_string();
        let html = text(page).await;
        for asset in &ASSETS {
            assert!(html.contains(&format!("/dashboard/{}/{}", *VERSION, asset.name)), "{} not linked", asset.name);
        }
        assert!(!html.contains(ASSETS_PLACEHOLDER) && !html.contains("<script>") && !html.contains("style="));
        assert_eq!(get("/", Some(&etag)).await.status(), StatusCode::NOT_MODIFIED);
    }

    #[tokio::test]
    async fn assets_have_their_content_type_and_only_this_version_is_kept() {
        for asset in &ASSETS {
            let current = get(&format!("/dashboard/{}/{}", *VERSION, asset.name), None).await;
            assert_eq!(current.status(), StatusCode::OK);
            assert_eq!(header(&current, CONTENT_TYPE), asset.content_type);
            assert_eq!(header(&current, CACHE_CONTROL), ASSET_CACHE_CONTROL);
            assert_eq!(header(&current, X_CONTENT_TYPE_OPTIONS), "nosniff");
            let older = get(&format!("/dashboard/0123456789ab/{}", asset.name), None).await;
            assert_eq!(header(&older, CACHE_CONTROL), "no-cache");
        }
        assert_eq!(get(&format!("/dashboard/{}/secret.txt", *VERSION), None).await.status(), StatusCode::NOT_FOUND);
    }
}
