//! Uncompressed domain names in wire form (RFC 1035 §3.1).
//!
//! A wire name is a sequence of length-prefixed labels ending in the empty
//! root label. Names in snapshots are stored lower-cased so that lookups are
//! byte comparisons; RFC 4343 makes DNS name comparison case-insensitive for
//! ASCII letters only, which is what [`lowercase_into`] does.

/// RFC 1035 §2.3.4: a name is at most 255 octets in wire form.
pub const MAX_NAME_LEN: usize = 255;
/// RFC 1035 §2.3.4: a label is at most 63 octets.
pub const MAX_LABEL_LEN: usize = 63;
/// A 255-octet name holds at most 128 labels (127 one-octet labels + root).
pub const MAX_LABELS: usize = 128;

/// Why a wire name was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The bytes end inside the name.
    #[error("name runs past the end of the message")]
    Truncated,
    /// A label length byte has the top bits set (a compression pointer or an
    /// RFC 6891 extended label type) where only plain labels are allowed.
    #[error("compression pointer or extended label where a plain label is required")]
    NotPlain,
    /// The name is longer than 255 octets.
    #[error("name longer than 255 octets")]
    TooLong,
}

/// Validates the uncompressed name starting at `pos` and returns its length.
///
/// Questions never need compression (there is nothing before them to point
/// at), so RFC 1035 §4.1.4 pointers in a question are treated as malformed.
pub fn plain_name_len(buf: &[u8], pos: usize) -> Result<usize, NameError> {
    let mut at = pos;
    loop {
        let len = *buf.get(at).ok_or(NameError::Truncated)? as usize;
        if len > MAX_LABEL_LEN {
            return Err(NameError::NotPlain);
        }
        at += 1 + len;
        if at - pos > MAX_NAME_LEN {
            return Err(NameError::TooLong);
        }
        if len == 0 {
            return Ok(at - pos);
        }
        if at > buf.len() {
            return Err(NameError::Truncated);
        }
    }
}

/// Copies `src` into `dst` with ASCII letters lower-cased (RFC 4343 §3).
///
/// Only `dst[..src.len()]` is written; label length bytes are < 64 and so are
/// never letters, which lets the whole name be mapped byte by byte.
pub fn lowercase_into(src: &[u8], dst: &mut [u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = s.to_ascii_lowercase();
    }
}

/// Offsets of each label start in a valid wire name, root label excluded.
///
/// Returns the number of labels written to `out`. Each offset is also the
/// start of a suffix of the name (a closer or farther ancestor).
pub fn label_starts(name: &[u8], out: &mut [u8; MAX_LABELS]) -> usize {
    let mut n = 0;
    let mut at = 0usize;
    while let Some(&len) = name.get(at) {
        if len == 0 || n == MAX_LABELS {
            break;
        }
        out[n] = at as u8;
        n += 1;
        at += 1 + len as usize;
    }
    n
}

/// The number of labels in a valid wire name, root excluded.
pub fn label_count(name: &[u8]) -> usize {
    let mut starts = [0u8; MAX_LABELS];
    label_starts(name, &mut starts)
}

/// Whether `name` ends with the labels of `suffix` (both lower-cased wire names).
///
/// Compares at a label boundary, so `xample.com.` is not a suffix of `example.com.`.
pub fn is_subdomain(name: &[u8], suffix: &[u8]) -> bool {
    if suffix.len() > name.len() {
        return false;
    }
    let cut = name.len() - suffix.len();
    if name[cut..] != *suffix {
        return false;
    }
    // `cut` must be a label boundary of `name`.
    let mut at = 0usize;
    while at < cut {
        match name.get(at) {
            Some(&len) if len != 0 => at += 1 + len as usize,
            _ => return false,
        }
    }
    at == cut
}

/// Formats a wire name in presentation form (RFC 1035 §5.1) for logs and errors.
pub fn to_text(name: &[u8]) -> String {
    let mut out = String::new();
    let mut at = 0usize;
    while let Some(&len) = name.get(at) {
        if len == 0 {
            break;
        }
        let label = name.get(at + 1..at + 1 + len as usize).unwrap_or(&[]);
        for &b in label {
            match b {
                b'.' | b'\\' | b'"' | b'(' | b')' | b';' | b'@' | b'$' => {
                    out.push('\\');
                    out.push(b as char);
                }
                0x21..=0x7e => out.push(b as char),
                _ => out.push_str(&format!("\\{b:03}")),
            }
        }
        out.push('.');
        at += 1 + len as usize;
    }
    if out.is_empty() {
        out.push('.');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_measured() {
        assert_eq!(plain_name_len(b"\x03www\x07example\x00", 0), Ok(13));
        assert_eq!(plain_name_len(b"\x00", 0), Ok(1));
        assert_eq!(plain_name_len(b"\x03ww", 0), Err(NameError::Truncated));
        assert_eq!(plain_name_len(b"\xc0\x0c", 0), Err(NameError::NotPlain));
    }

    #[test]
    fn rfc1035_2_3_4_names_over_255_octets_are_rejected() {
        let mut long = Vec::new();
        for _ in 0..5 {
            long.push(63);
            long.extend_from_slice(&[b'a'; 63]);
        }
        long.push(0);
        assert_eq!(plain_name_len(&long, 0), Err(NameError::TooLong));
    }

    #[test]
    fn subdomain_respects_label_boundaries() {
        assert!(is_subdomain(b"\x03www\x07example\x00", b"\x07example\x00"));
        assert!(is_subdomain(b"\x07example\x00", b"\x00"));
        assert!(!is_subdomain(b"\x08eexample\x00", b"\x07example\x00"));
    }

    #[test]
    fn text_form_escapes_special_bytes() {
        assert_eq!(to_text(b"\x03a.b\x01\x07\x00"), "a\\.b.\\007.");
        assert_eq!(to_text(b"\x00"), ".");
    }
}
