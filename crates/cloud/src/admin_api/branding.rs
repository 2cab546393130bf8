//! The sign-in pages' logo: uploaded by a Global Administrator (PNG, JPEG, GIF or WebP,
//! recognised from its bytes, at most [`MAX_LOGO`]), served to browsers at
//! `/{tenant}/branding/logo` with the content type its bytes were recognised as. The name,
//! colour and text of the branding are tenant settings (`branding_*`).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{authorize, ops};
use crate::oauth_error::ApiError;
use crate::state::Shared;
use crate::store::Logo;

/// The largest logo taken, bytes.
pub const MAX_LOGO: usize = 48 * 1024;

/// `POST /branding/logo` and `DELETE /branding/logo`: what the tenant's logo is now.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LogoState {
    /// Whether the tenant has a logo.
    pub present: bool,
    pub content_type: Option<String>,
    pub bytes: Option<u64>,
    /// Where browsers read it.
    pub url: Option<String>,
}

/// The image type of `bytes` by their first bytes (never by what the uploader said).
pub fn image_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// `POST /{tenant}/admin/branding/logo`: the body is the image.
#[utoipa::path(
    post,
    path = "/branding/logo",
    operation_id = ops::SET_LOGO.id,
    summary = ops::SET_LOGO.summary,
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The logo: PNG, JPEG, GIF or WebP, at most 48 KiB."),
    responses((status = 200, description = "Done.", body = LogoState))
)]
pub async fn set(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<LogoState>, ApiError> {
    let (t, admin) = authorize(&state, &tenant, &headers, ops::SET_LOGO).await?;
    let too_big = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            format!(
                "The logo is larger than {} KiB: make it smaller (a 200 x 60 PNG is a few KiB).",
                MAX_LOGO / 1024
            ),
        )
    };
    let bytes = axum::body::to_bytes(body, MAX_LOGO)
        .await
        .map_err(|_| too_big())?;
    let content_type = image_type(&bytes).ok_or_else(|| {
        ApiError::bad_request("The logo must be a PNG, JPEG, GIF or WebP image (SVG is not taken: it can carry script).")
    })?;
    let logo = Logo {
        content_type: content_type.to_string(),
        bytes: bytes.to_vec(),
        updated_at: crate::clock::unix_now(),
    };
    state.store.set_logo(t.id, &logo).await?;
    tracing::info!(tenant = %t.name, by = %admin.upn, bytes = logo.bytes.len(), content_type, "branding logo set");
    Ok(Json(LogoState {
        present: true,
        content_type: Some(logo.content_type),
        bytes: Some(logo.bytes.len() as u64),
        url: Some(format!("/{}/branding/logo", t.name)),
    }))
}

/// `DELETE /{tenant}/admin/branding/logo`
#[utoipa::path(
    delete,
    path = "/branding/logo",
    operation_id = ops::REMOVE_LOGO.id,
    summary = ops::REMOVE_LOGO.summary,
    responses((status = 200, description = "Done.", body = LogoState))
)]
pub async fn remove(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Json<LogoState>, ApiError> {
    let (t, _) = authorize(&state, &tenant, &headers, ops::REMOVE_LOGO).await?;
    state.store.remove_logo(t.id).await?;
    Ok(Json(LogoState {
        present: false,
        content_type: None,
        bytes: None,
        url: None,
    }))
}

/// `GET /{tenant}/branding/logo` (public: the sign-in pages show it): the bytes as uploaded,
/// with the type they were recognised as, never sniffed, never run.
pub async fn serve(State(state): State<Shared>, Path(tenant): Path<String>) -> Response {
    let not_found = || (StatusCode::NOT_FOUND, "no logo").into_response();
    let t = match state.store.tenant(&tenant).await {
        Ok(Some(t)) => t,
        Ok(None) => return not_found(),
        Err(e) => {
            tracing::error!(error = %e, "branding logo: store failed");
            return (StatusCode::SERVICE_UNAVAILABLE, "try again").into_response();
        }
    };
    let logo = match state.store.logo(t.id).await {
        Ok(Some(l)) => l,
        Ok(None) => return not_found(),
        Err(e) => {
            tracing::error!(error = %e, "branding logo: store failed");
            return (StatusCode::SERVICE_UNAVAILABLE, "try again").into_response();
        }
    };
    // Only a type recognised at upload is ever sent.
    let Some(kind) = image_type(&logo.bytes) else {
        return not_found();
    };
    let mut r = (StatusCode::OK, logo.bytes).into_response();
    let h = r.headers_mut();
    h.insert("content-type", HeaderValue::from_static(kind));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    h.insert(
        "cache-control",
        HeaderValue::from_static("public, max-age=300"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    r
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_recognised_images_are_taken() {
        use super::image_type;
        assert_eq!(image_type(b"\x89PNG\r\n\x1a\nrest"), Some("image/png"));
        assert_eq!(image_type(&[0xff, 0xd8, 0xff, 0xe0]), Some("image/jpeg"));
        assert_eq!(image_type(b"GIF89a..."), Some("image/gif"));
        assert_eq!(image_type(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        for bad in [&b"<svg xmlns=...>"[..], b"<html>", b"", b"RIFF\0\0\0\0WAVE"] {
            assert_eq!(image_type(bad), None, "{bad:?}");
        }
    }
}

#[cfg(test)]
mod flow_tests {
    use axum::body::Body;
    use axum::http::Request;

    use crate::admin_api::ops::GLOBAL_ADMIN;
    use crate::in_process::{ad, Bed};

    /// A 1x1 PNG.
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\0\x05\0\x01\xff\x89\x99=\x1d\0\0\0\0IEND\xaeB`\x82";

    /// The branding an administrator sets shows on the sign-in pages (name, logo, text,
    /// button colour) with the CSP still strict; the logo is served with the type its bytes
    /// were recognised as; what is not an image, or too large, is refused.
    #[tokio::test]
    async fn branding_shows_on_the_sign_in_pages() -> anyhow::Result<()> {
        let mut bed = Bed::new(ad).await?;
        let admin = bed.onprem_user("gail").await?;
        bed.state
            .store
            .set_user_role(bed.tenant.id, admin.id, GLOBAL_ADMIN, 1)
            .await?;
        let token =
            crate::test_state::admin_token_of(&bed.state, bed.tenant.id, &admin.upn).await?;
        let put = |body: Vec<u8>| {
            Request::builder()
                .method("POST")
                .uri("/contoso/admin/branding/logo")
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/octet-stream")
                .body(Body::from(body))
        };
        // Before: no branding on the page, no image allowed.
        let plain = bed.authorize().await?;
        assert!(!plain.body.contains("id=\"org\""), "{}", plain.body);
        let csp = |a: &crate::in_process::Answer| {
            a.headers
                .get("content-security-policy")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert!(!csp(&plain).contains("img-src"), "{}", csp(&plain));

        for (body, status) in [
            (
                b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>".to_vec(),
                400,
            ),
            (vec![0x89; super::MAX_LOGO + 1], 413),
            (PNG.to_vec(), 200),
        ] {
            let a = bed.send(put(body)?).await?;
            assert_eq!(a.status, status, "{}", a.body);
        }
        bed.settings(|s| {
            s.branding_name = "Contoso <Ltd>".into();
            s.branding_accent_color = "#0b5cad".into();
            s.branding_sign_in_text = "Use your corp account.".into();
        })
        .await?;
        let branded = bed.authorize().await?;
        for want in [
            "id=\"org-name\">Contoso &lt;Ltd&gt;</span>",
            "src=\"/contoso/branding/logo?v=",
            "id=\"sign-in-text\">Use your corp account.</p>",
            "<style>button{background:#0b5cad}</style>",
        ] {
            assert!(
                branded.body.contains(want),
                "{want} not in {}",
                branded.body
            );
        }
        let policy = csp(&branded);
        assert!(
            policy.contains("img-src 'self'") && policy.contains("default-src 'none'"),
            "{policy}"
        );
        assert_eq!(policy.matches("'sha256-").count(), 2, "{policy}");
        assert!(!policy.contains("unsafe"), "{policy}");

        let logo = bed.get("/contoso/branding/logo", "").await?;
        assert_eq!(logo.status, 200);
        let h = |k: &str| {
            logo.headers
                .get(k)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(h("content-type"), "image/png");
        assert_eq!(h("x-content-type-options"), "nosniff");
        assert!(h("content-security-policy").contains("sandbox"));
        assert_eq!(bed.get("/nowhere/branding/logo", "").await?.status, 404);
        Ok(())
    }
}
