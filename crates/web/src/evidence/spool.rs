//! Temporary files an export is written to, hashed on the way: a large
//! export goes through the page cache, never through memory whole.

use sha2::{Digest, Sha256};
use std::io::{Read, Seek, Write};

/// A file being written to a temporary file, its length and SHA-256
/// taken as it goes (in the buffer's large chunks).
pub struct Spool {
    out: std::io::BufWriter<Hashed>,
}

/// The file under the buffer: counts and hashes what reaches it.
struct Hashed {
    file: std::fs::File,
    len: u64,
    hash: Sha256,
}

impl Write for Hashed {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(bytes)?;
        self.len += n as u64;
        self.hash.update(&bytes[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// A [`Spool`] written: read it from the start.
pub struct Spooled {
    pub file: std::fs::File,
    pub len: u64,
    /// Lowercase hex.
    pub sha256: String,
}

impl Spool {
    pub fn new() -> std::io::Result<Spool> {
        Ok(Spool {
            out: std::io::BufWriter::with_capacity(
                1 << 16,
                Hashed {
                    file: tempfile::tempfile()?,
                    len: 0,
                    hash: Sha256::new(),
                },
            ),
        })
    }

    pub fn finish(self) -> std::io::Result<Spooled> {
        let Hashed {
            mut file,
            len,
            hash,
        } = self.out.into_inner().map_err(|e| e.into_error())?;
        file.rewind()?;
        Ok(Spooled {
            file,
            len,
            sha256: hex::encode(hash.finalize()),
        })
    }
}

impl Write for Spool {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.out.write(bytes)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl Spooled {
    /// Made of `bytes` (small files; tests).
    pub fn of(bytes: &[u8]) -> std::io::Result<Spooled> {
        let mut s = Spool::new()?;
        s.write_all(bytes)?;
        s.finish()
    }

    /// The whole file (a test's or the CLI's copy).
    pub fn into_bytes(mut self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(usize::try_from(self.len).unwrap_or(0));
        self.file.read_to_end(&mut out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spooled_file_reads_back_with_its_length_and_hash() {
        let mut s = Spool::new().expect("a temporary file");
        for _ in 0..10_000 {
            s.write_all(b"0123456789").expect("written");
        }
        let done = s.finish().expect("finished");
        assert_eq!(done.len, 100_000);
        assert_eq!(
            done.sha256,
            hex::encode(Sha256::digest("0123456789".repeat(10_000)))
        );
        assert_eq!(done.into_bytes().expect("read").len(), 100_000);
    }
}
