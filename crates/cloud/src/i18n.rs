//! The languages of the pages people see: Fluent catalogs (`crates/cloud/locales/LANG/*.ftl`,
//! embedded in the binary) for English, German and French, and the choice of one per request:
//! the app's `ui_locales` (remembered for the rest of the sign-in in a cookie), then the
//! browser's `Accept-Language`, then English. A key missing from a catalog falls back to
//! English (a test keeps the catalogs' keys equal).

use std::sync::OnceLock;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource};

/// A language the pages are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Locale {
    #[default]
    En,
    De,
    Fr,
}

impl Locale {
    /// Every language, English (the reference) first.
    pub const ALL: [Locale; 3] = [Locale::En, Locale::De, Locale::Fr];

    /// The BCP 47 tag (`<html lang>`, the cookie).
    pub fn tag(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::De => "de",
            Locale::Fr => "fr",
        }
    }

    /// The language of a BCP 47 tag (`de`, `de-CH`, `FR-ca`...), if it is one of ours.
    pub fn from_tag(tag: &str) -> Option<Locale> {
        let primary = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        Locale::ALL.into_iter().find(|l| l.tag() == primary)
    }

    fn catalog(self) -> &'static str {
        match self {
            Locale::En => include_str!("../locales/en/signin.ftl"),
            Locale::De => include_str!("../locales/de/signin.ftl"),
            Locale::Fr => include_str!("../locales/fr/signin.ftl"),
        }
    }
}

/// The first of ours in an OIDC `ui_locales` value (space-separated tags, preferred first).
pub fn from_ui_locales(value: &str) -> Option<Locale> {
    value.split_whitespace().find_map(Locale::from_tag)
}

/// The one of ours an `Accept-Language` header prefers most (by `q`, then order); `None`
/// when it names none of them.
pub fn from_accept_language(value: &str) -> Option<Locale> {
    let mut best: Option<(f32, Locale)> = None;
    for part in value.split(',').take(32) {
        let mut fields = part.split(';');
        let Some(locale) = fields.next().and_then(Locale::from_tag) else {
            continue;
        };
        let q = fields
            .find_map(|f| f.trim().strip_prefix("q="))
            .and_then(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
            best = Some((q, locale));
        }
    }
    best.map(|(_, l)| l)
}

type Bundle = FluentBundle<FluentResource>;

fn bundles() -> &'static [Bundle; 3] {
    static BUNDLES: OnceLock<[Bundle; 3]> = OnceLock::new();
    BUNDLES.get_or_init(|| Locale::ALL.map(build))
}

/// A catalog's bundle. A catalog that does not parse keeps the messages that did (a test
/// proves every catalog parses).
fn build(locale: Locale) -> Bundle {
    let resource = FluentResource::try_new(locale.catalog().to_string())
        .unwrap_or_else(|(partial, _)| partial);
    let lang = locale.tag().parse().unwrap_or_default();
    let mut bundle = FluentBundle::new_concurrent(vec![lang]);
    // Plain text in HTML: no Unicode isolation marks around arguments.
    bundle.set_use_isolating(false);
    let _ = bundle.add_resource(resource);
    bundle
}

fn bundle(locale: Locale) -> &'static Bundle {
    let i = Locale::ALL.iter().position(|l| *l == locale).unwrap_or(0);
    &bundles()[i]
}

/// The message `key` in `locale` (English when that catalog lacks it; the key itself when
/// no catalog has it), with `args` put in.
pub fn text(locale: Locale, key: &str, args: &[(&str, &str)]) -> String {
    for l in [locale, Locale::En] {
        let b = bundle(l);
        let Some(pattern) = b.get_message(key).and_then(|m| m.value()) else {
            continue;
        };
        let mut fa = FluentArgs::new();
        for (k, v) in args {
            fa.set(*k, v.to_string());
        }
        let mut errors = Vec::new();
        return b
            .format_pattern(pattern, Some(&fa), &mut errors)
            .into_owned();
    }
    key.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(locale: Locale) -> Vec<String> {
        locale
            .catalog()
            .lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with(' ') && l.contains(" = "))
            .filter_map(|l| l.split(" = ").next().map(str::to_string))
            .collect()
    }

    #[test]
    fn every_catalog_parses_and_has_every_key() {
        let reference = keys(Locale::En);
        assert!(reference.len() > 30, "{reference:?}");
        for l in Locale::ALL {
            assert!(
                FluentResource::try_new(l.catalog().to_string()).is_ok(),
                "{} does not parse",
                l.tag()
            );
            assert_eq!(keys(l), reference, "{} has other keys than en", l.tag());
            for k in &reference {
                let t = text(l, k, &[("code", "AADSTS50126"), ("id", "x")]);
                assert!(!t.is_empty() && t != *k, "{} {k}", l.tag());
                if l != Locale::En {
                    // Translated, not copied (a few words may match, whole sentences do not).
                    let en = text(Locale::En, k, &[("code", "AADSTS50126"), ("id", "x")]);
                    assert!(
                        t != en || t.len() < 12,
                        "{} {k} is the English text",
                        l.tag()
                    );
                }
            }
        }
    }

    #[test]
    fn the_language_is_chosen_from_ui_locales_then_accept_language() {
        assert_eq!(from_ui_locales("es-ES de-CH en"), Some(Locale::De));
        assert_eq!(from_ui_locales("ja"), None);
        assert_eq!(
            from_accept_language("en-US;q=0.5, fr-CA;q=0.9, de;q=0.8"),
            Some(Locale::Fr)
        );
        assert_eq!(
            from_accept_language("de-DE,de;q=0.9,en;q=0.8"),
            Some(Locale::De)
        );
        assert_eq!(from_accept_language("ja, fr;q=0"), None);
        assert_eq!(from_accept_language(""), None);
        assert_eq!(
            text(Locale::De, "error-code", &[("code", "AADSTS50126")]),
            "Fehlercode: AADSTS50126"
        );
        assert_eq!(text(Locale::Fr, "no-such-key", &[]), "no-such-key");
    }
}
