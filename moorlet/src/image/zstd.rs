//! A zstd stream of several frames, skippable frames among them (zstd:chunked layers, pzstd
//! output), decoded frame after frame: ruzstd's decoder reads one frame.

use std::io::{self, Read};

use ruzstd::decoding::{FrameDecoder, StreamingDecoder};

/// Yields `head` before the rest of `inner`: a frame's magic, read to tell which frame it is.
struct Peeked<R> {
    head: [u8; 4],
    pos: usize,
    inner: R,
}

impl<R: Read> Read for Peeked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos < self.head.len() {
            let n = (self.head.len() - self.pos).min(buf.len());
            buf[..n].copy_from_slice(&self.head[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        self.inner.read(buf)
    }
}

enum State<R: Read> {
    Between(R),
    Frame(Box<StreamingDecoder<Peeked<R>, FrameDecoder>>),
    Failed,
}

pub(crate) struct Frames<R: Read> {
    state: State<R>,
}

impl<R: Read> Frames<R> {
    pub fn new(inner: R) -> Self {
        Frames {
            state: State::Between(inner),
        }
    }
}

fn read_exact_or_eof(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

impl<R: Read> Read for Frames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match std::mem::replace(&mut self.state, State::Failed) {
                State::Failed => return Err(io::Error::other("the zstd stream failed before")),
                State::Frame(mut d) => {
                    let n = d.read(buf)?;
                    if n > 0 {
                        self.state = State::Frame(d);
                        return Ok(n);
                    }
                    self.state = State::Between((*d).into_inner().inner);
                }
                State::Between(mut inner) => {
                    let mut magic = [0u8; 4];
                    match read_exact_or_eof(&mut inner, &mut magic)? {
                        0 => {
                            self.state = State::Between(inner);
                            return Ok(0);
                        }
                        4 => {}
                        _ => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "a truncated zstd frame")),
                    }
                    if u32::from_le_bytes(magic) & 0xffff_fff0 == 0x184d_2a50 {
                        let mut len = [0u8; 4];
                        inner.read_exact(&mut len)?;
                        let len = u64::from(u32::from_le_bytes(len));
                        let skipped = io::copy(&mut (&mut inner).take(len), &mut io::sink())?;
                        if skipped != len {
                            return Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                "a truncated skippable frame",
                            ));
                        }
                        self.state = State::Between(inner);
                        continue;
                    }
                    let peeked = Peeked {
                        head: magic,
                        pos: 0,
                        inner,
                    };
                    let d =
                        StreamingDecoder::new(peeked).map_err(|e| io::Error::other(format!("bad zstd frame: {e}")))?;
                    self.state = State::Frame(Box::new(d));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_skippable_frames() {
        let level = ruzstd::encoding::CompressionLevel::Fastest;
        let mut stream = ruzstd::encoding::compress_to_vec(&b"first "[..], level);
        stream.extend_from_slice(&0x184d_2a5au32.to_le_bytes());
        stream.extend_from_slice(&3u32.to_le_bytes());
        stream.extend_from_slice(b"xyz");
        stream.extend(ruzstd::encoding::compress_to_vec(&b"second"[..], level));
        let mut out = String::new();
        Frames::new(&stream[..]).read_to_string(&mut out).expect("decode");
        assert_eq!(out, "first second");
        let truncated = &stream[..stream.len() - 2];
        assert!(Frames::new(truncated).read_to_string(&mut String::new()).is_err());
    }
}
