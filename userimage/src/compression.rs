//! Compressed streams, told apart by their magic bytes: gzip, zstd, or none.

use std::io::{BufRead, Read};

/// The gzip magic.
const GZIP: [u8; 2] = [0x1f, 0x8b];
/// The zstd frame magic.
const ZSTD: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Errors while opening a compressed stream.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The stream could not be read.
    #[error("cannot read the stream")]
    Read(#[source] std::io::Error),
    /// The zstd frame header is damaged.
    #[error("not a readable zstd stream: {0}")]
    Zstd(String),
}

/// `input` decompressed, when its first bytes name gzip or zstd; else `input` itself.
pub fn decompress<'a, R: BufRead + 'a>(mut input: R) -> Result<Box<dyn Read + 'a>, Error> {
    let head = input.fill_buf().map_err(Error::Read)?;
    if head.starts_with(&GZIP) {
        return Ok(Box::new(flate2::bufread::MultiGzDecoder::new(input)));
    }
    if head.starts_with(&ZSTD) {
        let decoder = ruzstd::decoding::StreamingDecoder::new(input)
            .map_err(|e| Error::Zstd(e.to_string()))?;
        return Ok(Box::new(decoder));
    }
    Ok(Box::new(input))
}
