//! Container logs in the CRI format the kubelet uses: one line per record,
//! `<RFC3339Nano time> <stdout|stderr> <P|F> <message>`, P for a partial line (a long line is cut
//! at 16 KiB), F for the last part. Files: `<root>/<ns>_<pod>_<uid>/<container>/<restart>.log`,
//! rotated at 10 MiB into `<restart>.log.1` .. `.4` (5 files in all) by default.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

pub const MAX_SIZE: u64 = 10 * 1024 * 1024;
pub const MAX_FILES: u32 = 5;
const MAX_LINE: usize = 16 * 1024;

pub fn container_dir(root: &Path, ns: &str, pod: &str, uid: &str, container: &str) -> PathBuf {
    root.join(format!("{ns}_{pod}_{uid}")).join(container)
}

pub struct CriLog {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
}

impl CriLog {
    pub fn open(path: &Path) -> Result<CriLog> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let file = open_append(path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        // For tests only: rotation at a few KiB instead of 10 MiB.
        let max_size = std::env::var("MOORLET_LOG_MAX_SIZE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(MAX_SIZE);
        Ok(CriLog {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
        })
    }

    /// Writes one record; errors are reported once by the caller's log, the workload goes on.
    pub fn write(&mut self, stream: &str, partial: bool, msg: &[u8]) -> Result<()> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let mut rec = format!(
            "{} {stream} {} ",
            crate::util::rfc3339(now, true),
            if partial { "P" } else { "F" }
        )
        .into_bytes();
        rec.extend_from_slice(msg);
        rec.push(b'\n');
        if self.size > 0 && self.size + rec.len() as u64 > self.max_size {
            self.rotate()?;
        }
        self.file
            .write_all(&rec)
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        self.size += rec.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> Result<()> {
        let name = |i: u32| PathBuf::from(format!("{}.{i}", self.path.display()));
        let _ = std::fs::remove_file(name(MAX_FILES - 1));
        for i in (1..MAX_FILES - 1).rev() {
            let _ = std::fs::rename(name(i), name(i + 1));
        }
        std::fs::rename(&self.path, name(1)).with_context(|| format!("cannot rotate {}", self.path.display()))?;
        self.file = open_append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

fn open_append(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))
}

/// Cuts a stream's bytes into records: whole lines (F) and 16 KiB pieces of longer ones (P).
#[derive(Default)]
pub struct Lines {
    buf: Vec<u8>,
}

impl Lines {
    pub fn push(&mut self, data: &[u8], mut out: impl FnMut(bool, &[u8])) {
        self.buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(i) = self.buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + i;
            let mut s = start;
            while end - s > MAX_LINE {
                out(true, &self.buf[s..s + MAX_LINE]);
                s += MAX_LINE;
            }
            out(false, &self.buf[s..end]);
            start = end + 1;
        }
        while self.buf.len() - start >= MAX_LINE {
            out(true, &self.buf[start..start + MAX_LINE]);
            start += MAX_LINE;
        }
        self.buf.drain(..start);
    }

    /// At the end of the stream: what is left is a last line without its newline.
    pub fn finish(&mut self, mut out: impl FnMut(bool, &[u8])) {
        if !self.buf.is_empty() {
            out(false, &self.buf);
            self.buf.clear();
        }
    }
}

/// Turns CRI records back into the workload's output: P parts joined up to their F.
#[derive(Default)]
pub struct Reader {
    pending: Vec<u8>,
    first_time: Option<String>,
}

impl Reader {
    /// Feeds one record (without its newline); returns a whole output line when complete.
    pub fn record(&mut self, rec: &[u8], timestamps: bool) -> Option<String> {
        let mut parts = rec.splitn(4, |&b| b == b' ');
        let time = String::from_utf8_lossy(parts.next()?).into_owned();
        let _stream = parts.next()?;
        let tag = parts.next()?;
        let msg = parts.next().unwrap_or_default();
        self.first_time.get_or_insert(time);
        self.pending.extend_from_slice(msg);
        if tag == b"P" {
            return None;
        }
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        let time = self.first_time.take().unwrap_or_default();
        Some(if timestamps { format!("{time} {text}") } else { text })
    }
}

/// The files of one restart's log, oldest first (rotated ones, then the current one).
pub fn files(current: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = (1..MAX_FILES)
        .rev()
        .map(|i| PathBuf::from(format!("{}.{i}", current.display())))
        .filter(|p| p.exists())
        .collect();
    out.push(current.to_path_buf());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_back() {
        let mut l = Lines::default();
        let mut recs = Vec::new();
        l.push(b"one\ntw", |p, m| recs.push((p, m.to_vec())));
        l.push(b"o\n", |p, m| recs.push((p, m.to_vec())));
        l.push(&vec![b'x'; MAX_LINE + 3], |p, m| recs.push((p, m.to_vec())));
        l.finish(|p, m| recs.push((p, m.to_vec())));
        assert_eq!(recs[0], (false, b"one".to_vec()));
        assert_eq!(recs[1], (false, b"two".to_vec()));
        assert!(recs[2].0);
        assert_eq!(recs[3], (false, b"xxx".to_vec()));
        let mut r = Reader::default();
        assert_eq!(
            r.record(b"2026-01-01T00:00:00.000000000Z stdout F a b", false)
                .as_deref(),
            Some("a b")
        );
        assert_eq!(r.record(b"t1 stdout P ab", true), None);
        assert_eq!(r.record(b"t2 stdout F c", true).as_deref(), Some("t1 abc"));
    }

    #[test]
    fn rotates() {
        let dir = std::env::temp_dir().join(format!("moorlet-rot-{}", std::process::id()));
        let path = dir.join("0.log");
        let mut log = CriLog::open(&path).unwrap();
        log.max_size = 200;
        for _ in 0..40 {
            log.write("stdout", false, b"0123456789012345678901234567890123456789")
                .unwrap();
        }
        let n = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(n, MAX_FILES as usize);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
