//! Content digests (`sha256:<64 lowercase hex>`, the only algorithm accepted) and a reader that
//! hashes and counts what passes through it.

use std::io::Read;

use sha2::{Digest as _, Sha256};

use super::ImageError;

/// A validated `sha256:<hex>` digest; its hex part is safe to use as a file name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Digest(String);

impl Digest {
    pub fn parse(s: &str) -> Result<Digest, ImageError> {
        let hex = s
            .strip_prefix("sha256:")
            .ok_or_else(|| ImageError::format(format!("digest {s:?}"), "only sha256 digests are supported"))?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(ImageError::format(
                format!("digest {s:?}"),
                "not sha256:<64 lowercase hex digits>",
            ));
        }
        Ok(Digest(s.to_string()))
    }

    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn of(data: &[u8]) -> Digest {
        Digest(format!("sha256:{}", hex(&Sha256::digest(data))))
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hashes and counts the bytes read through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Reads what is left (a tar stream's padding after its end marker counts in a diff id),
    /// then returns the digest and the byte count.
    pub fn finish(mut self) -> std::io::Result<(Digest, u64)> {
        std::io::copy(&mut self, &mut std::io::sink())?;
        Ok((Digest(format!("sha256:{}", hex(&self.hasher.finalize()))), self.count))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_hashes() {
        let d = Digest::of(b"abc");
        assert_eq!(
            d.as_str(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(Digest::parse(d.as_str()).is_ok());
        assert!(Digest::parse("sha512:00").is_err());
        assert!(Digest::parse(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(Digest::parse(&format!("sha256:../{}", "a".repeat(61))).is_err());
        let mut r = HashingReader::new(&b"abc"[..]);
        let mut first = [0u8; 1];
        assert_eq!(r.read(&mut first).ok(), Some(1));
        assert_eq!(r.finish().ok(), Some((d, 3)));
    }
}
