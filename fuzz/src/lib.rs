//! What the fuzz targets share: how an input is cut into fields.
//!
//! Input layout: the first byte chooses what a target does with the rest (the "mode"); the
//! rest is cut into fields at each 0xFF byte, which never occurs in UTF-8 text, so seed files
//! stay readable (`printf '\x00{"a":1}\xffsecond field'`).

/// The mode byte and the fields of an input (an empty input is mode 0 with one empty field).
pub fn fields(data: &[u8]) -> (u8, Vec<&[u8]>) {
    match data.split_first() {
        Some((&mode, rest)) => (mode, rest.split(|&b| b == 0xff).collect()),
        None => (0, vec![&[][..]]),
    }
}

/// Field `i` as text (lossy, so invalid UTF-8 still reaches the parser as replacement
/// characters), empty when missing.
pub fn text(fields: &[&[u8]], i: usize) -> String {
    fields
        .get(i)
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .unwrap_or_default()
}
