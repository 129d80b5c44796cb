//! Content digests: the `sha256:<hex>` names of OCI blobs, and a reader that hashes what
//! passes through it.

use std::io::Read;

use sha2::{Digest as _, Sha256, Sha512};

/// Errors about a digest's name.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The digest is not `sha256:` or `sha512:` followed by lowercase hex of the right length.
    #[error("'{0}' is not a sha256 or sha512 digest (algorithm:lowercase-hex)")]
    Malformed(String),
}

/// A digest algorithm this crate verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// SHA-256, 64 hex digits.
    Sha256,
    /// SHA-512, 128 hex digits.
    Sha512,
}

impl Algorithm {
    /// Its name in a digest (`sha256`).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }
}

/// A validated digest: an algorithm and its hex value. The hex is checked, so it can name
/// a file (`blobs/sha256/<hex>`) without reaching anywhere else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// The value, lowercase hex.
    pub hex: String,
}

impl Digest {
    /// Parses `sha256:<64 hex>` or `sha512:<128 hex>`.
    pub fn parse(text: &str) -> Result<Digest, Error> {
        let malformed = || Error::Malformed(text.to_owned());
        let (name, hex) = text.split_once(':').ok_or_else(malformed)?;
        let (algorithm, len) = match name {
            "sha256" => (Algorithm::Sha256, 64),
            "sha512" => (Algorithm::Sha512, 128),
            _ => return Err(malformed()),
        };
        if hex.len() != len || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(malformed());
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_owned(),
        })
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

/// The running hash of one algorithm.
enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

/// A reader that hashes and counts every byte read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
    bytes: u64,
    /// Whether a read returned end of file for a non-empty buffer.
    ended: bool,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`, hashing with `algorithm`.
    pub fn new(inner: R, algorithm: Algorithm) -> Self {
        let hasher = match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        };
        HashingReader {
            inner,
            hasher,
            bytes: 0,
            ended: false,
        }
    }

    /// Reads the rest of the input, then returns the digest of everything and its length.
    pub fn finish(mut self) -> std::io::Result<(Digest, u64)> {
        std::io::copy(&mut self, &mut std::io::sink())?;
        let (algorithm, hex) = match self.hasher {
            Hasher::Sha256(h) => (Algorithm::Sha256, hex(&h.finalize())),
            Hasher::Sha512(h) => (Algorithm::Sha512, hex(&h.finalize())),
        };
        Ok((Digest { algorithm, hex }, self.bytes))
    }
}

impl<R> HashingReader<R> {
    /// Whether a read has reached the end of the input.
    pub fn ended(&self) -> bool {
        self.ended
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.ended = true;
        }
        match &mut self.hasher {
            Hasher::Sha256(h) => h.update(&buf[..n]),
            Hasher::Sha512(h) => h.update(&buf[..n]),
        }
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Lowercase hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 digest of a file's bytes.
pub fn sha256_file(path: &std::path::Path) -> std::io::Result<Digest> {
    let file = std::fs::File::open(path)?;
    HashingReader::new(std::io::BufReader::new(file), Algorithm::Sha256)
        .finish()
        .map(|(digest, _)| digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let hex = "a".repeat(64);
        let d = Digest::parse(&format!("sha256:{hex}")).unwrap();
        assert_eq!(d.algorithm, Algorithm::Sha256);
        assert_eq!(d.to_string(), format!("sha256:{hex}"));
        for bad in [
            "sha256:abc".to_owned(),
            format!("sha256:{}", "A".repeat(64)),
            format!("md5:{hex}"),
            format!("sha256:../../{}", "a".repeat(58)),
            hex.clone(),
        ] {
            assert!(Digest::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hashes_what_passes() {
        let r = HashingReader::new(&b"abc"[..], Algorithm::Sha256);
        let (d, n) = r.finish().unwrap();
        assert_eq!(n, 3);
        assert_eq!(
            d.hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
