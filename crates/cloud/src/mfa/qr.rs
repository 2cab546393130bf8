//! The enrolment QR code as inline SVG, drawn from the `qrcode` crate's module matrix (one
//! path, no style attribute, so the pages' Content-Security-Policy needs nothing more).

use maud::{html, Markup};
use qrcode::{Color, EcLevel, QrCode};

/// Quiet zone around the code, in modules (the standard asks for 4).
const QUIET: usize = 4;

/// An `<svg>` element showing `text` as a QR code (error correction M), or `None` when the
/// text is too long for a QR code.
pub(crate) fn svg(text: &str, label: &str) -> Option<Markup> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).ok()?;
    let width = code.width();
    let colors = code.to_colors();
    let size = width + 2 * QUIET;
    let mut d = String::with_capacity(colors.len() * 4);
    for (i, c) in colors.iter().enumerate() {
        if *c == Color::Dark {
            let (x, y) = (i % width + QUIET, i / width + QUIET);
            d.push_str(&format!("M{x} {y}h1v1h-1z"));
        }
    }
    let view_box = format!("0 0 {size} {size}");
    // SVG elements inside HTML need an end tag (or `/>`), hence `{}` on the empty ones.
    Some(html! {
        svg class="qr" id="qr" xmlns="http://www.w3.org/2000/svg" viewBox=(view_box) role="img" aria-label=(label) shape-rendering="crispEdges" {
            rect width=(size) height=(size) fill="#fff" {}
            path fill="#000" d=(d) {}
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn draws_a_square_code() {
        let s = super::svg("otpauth://totp/x:y?secret=ABCD", "QR code")
            .map(maud::Markup::into_string)
            .unwrap_or_default();
        assert!(s.starts_with("<svg class=\"qr\""));
        assert!(
            s.contains("viewBox=\"0 0 37 37\""),
            "version 3 (29 modules) + the quiet zone: {s}"
        );
        assert!(s.contains("M4 4h1v1h-1z"), "the finder pattern's corner");
        assert!(!s.contains("style"));
    }
}
