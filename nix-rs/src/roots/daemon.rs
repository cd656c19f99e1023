//! The one daemon operation nix-rs sends itself: `AddIndirectRoot` (Nix's worker protocol).
//!
//! Nix 2.26's C API reaches a daemon for everything else, but has no function for roots. This
//! speaks the protocol as Nix's client does (`WorkerProto::BasicClientConnection` in
//! libstore): integers are little-endian u64, strings are a u64 length, the bytes, and zero
//! padding to a multiple of 8.
//!
//! 1. Handshake: send `WORKER_MAGIC_1` and our protocol version; read `WORKER_MAGIC_2` and the
//!    daemon's version; the connection speaks the lower of the two. nix-rs offers 1.25: every
//!    daemon from Nix 2.0 on accepts it (current Nix requires at least 1.18), and below 1.26 a
//!    daemon error is a plain message and status. Then the obsolete CPU-affinity flag (0) and
//!    reserve-space flag (0), and the daemon's start-up messages up to `STDERR_LAST`.
//! 2. `AddIndirectRoot` (op 12) with the absolute path of the link; the daemon's messages up
//!    to `STDERR_LAST` (or `STDERR_ERROR`); then its reply, the integer 1.

use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};

const WORKER_MAGIC_1: u64 = 0x6e69_7863;
const WORKER_MAGIC_2: u64 = 0x6478_696f;
/// Protocol 1.25.
const CLIENT_VERSION: u64 = (1 << 8) | 25;
const OP_ADD_INDIRECT_ROOT: u64 = 12;

const STDERR_NEXT: u64 = 0x6f6c_6d67;
const STDERR_READ: u64 = 0x6461_7461;
const STDERR_WRITE: u64 = 0x6461_7416;
const STDERR_LAST: u64 = 0x616c_7473;
const STDERR_ERROR: u64 = 0x6378_7470;
const STDERR_START_ACTIVITY: u64 = 0x5354_5254;
const STDERR_STOP_ACTIVITY: u64 = 0x5354_4f50;
const STDERR_RESULT: u64 = 0x5253_4c54;

/// Longest string accepted from the daemon (a log line or error message).
const MAX_STRING: u64 = 1 << 24;

/// Asks the daemon listening on `socket` to register `link` (absolute) as an indirect root.
pub fn add_indirect_root(socket: &Path, link: &Path) -> Result<()> {
    let doing = format!("registering GC root '{}' with the Nix daemon at '{}'", link.display(), socket.display());
    let fail =
        |message: String| Error::Nix { doing: doing.clone(), code: crate::NixErrorCode::NixError, name: None, message };
    let stream = UnixStream::connect(socket).map_err(|e| fail(format!("cannot connect: {e}")))?;
    // A daemon that stops answering must not hang a build forever.
    let timeout = Some(Duration::from_secs(60));
    stream
        .set_read_timeout(timeout)
        .and_then(|()| stream.set_write_timeout(timeout))
        .map_err(|e| fail(e.to_string()))?;
    let mut conn =
        Conn { from: BufReader::new(stream.try_clone().map_err(|e| fail(e.to_string()))?), to: BufWriter::new(stream) };
    conn.add_indirect_root(link).map_err(|e| match e {
        Failure::Io(e) => fail(format!("connection failed: {e}")),
        Failure::Protocol(m) => fail(m),
        Failure::Daemon(m) => fail(m),
    })
}

#[derive(Debug)]
enum Failure {
    Io(std::io::Error),
    Protocol(String),
    Daemon(String),
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Io(e)
    }
}

type Step<T> = std::result::Result<T, Failure>;

struct Conn<R, W> {
    from: R,
    to: W,
}

impl<R: Read, W: Write> Conn<R, W> {
    fn add_indirect_root(&mut self, link: &Path) -> Step<()> {
        self.write_u64(WORKER_MAGIC_1)?;
        self.write_u64(CLIENT_VERSION)?;
        self.to.flush()?;
        let magic = self.read_u64()?;
        if magic != WORKER_MAGIC_2 {
            return Err(Failure::Protocol(format!("not a Nix daemon (greeting {magic:#x})")));
        }
        let daemon_version = self.read_u64()?;
        if daemon_version >> 8 != 1 || daemon_version & 0xff < 10 {
            return Err(Failure::Protocol(format!(
                "unsupported daemon protocol {}.{}",
                daemon_version >> 8,
                daemon_version & 0xff
            )));
        }
        let version = daemon_version.min(CLIENT_VERSION);
        if version & 0xff >= 14 {
            self.write_u64(0)?; // obsolete CPU affinity: none
        }
        if version & 0xff >= 11 {
            self.write_u64(0)?; // obsolete reserve-space flag
        }
        self.to.flush()?;
        self.messages(version)?;

        self.write_u64(OP_ADD_INDIRECT_ROOT)?;
        self.write_bytes(link.as_os_str().as_bytes())?;
        self.to.flush()?;
        self.messages(version)?;
        match self.read_u64()? {
            1 => Ok(()),
            n => Err(Failure::Protocol(format!("unexpected reply {n} to AddIndirectRoot"))),
        }
    }

    /// Reads the daemon's log messages up to `STDERR_LAST`; `STDERR_ERROR` is the daemon's
    /// failure.
    fn messages(&mut self, version: u64) -> Step<()> {
        loop {
            match self.read_u64()? {
                STDERR_LAST => return Ok(()),
                STDERR_NEXT => {
                    self.read_string()?;
                }
                STDERR_ERROR => {
                    let message = self.read_string()?;
                    let status = self.read_u64()?;
                    return Err(Failure::Daemon(format!("{} (status {status})", message.trim_end())));
                }
                STDERR_START_ACTIVITY if version & 0xff >= 20 => {
                    self.read_u64()?; // id
                    self.read_u64()?; // level
                    self.read_u64()?; // type
                    self.read_string()?;
                    self.read_fields()?;
                    self.read_u64()?; // parent
                }
                STDERR_STOP_ACTIVITY if version & 0xff >= 20 => {
                    self.read_u64()?;
                }
                STDERR_RESULT if version & 0xff >= 20 => {
                    self.read_u64()?; // id
                    self.read_u64()?; // type
                    self.read_fields()?;
                }
                m @ (STDERR_READ | STDERR_WRITE) => {
                    return Err(Failure::Protocol(format!(
                        "daemon asked for a data stream ({m:#x}) nix-rs never offers"
                    )));
                }
                m => return Err(Failure::Protocol(format!("unknown daemon message {m:#x}"))),
            }
        }
    }

    fn read_fields(&mut self) -> Step<()> {
        let n = self.read_u64()?;
        for _ in 0..n {
            match self.read_u64()? {
                0 => {
                    self.read_u64()?;
                }
                1 => {
                    self.read_string()?;
                }
                t => return Err(Failure::Protocol(format!("unknown log field type {t}"))),
            }
        }
        Ok(())
    }

    fn read_u64(&mut self) -> Step<u64> {
        let mut b = [0u8; 8];
        self.from.read_exact(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn read_string(&mut self) -> Step<String> {
        let len = self.read_u64()?;
        if len > MAX_STRING {
            return Err(Failure::Protocol(format!("daemon sent a string of {len} bytes")));
        }
        let padded = len.div_ceil(8) * 8;
        let mut b = vec![0u8; padded as usize];
        self.from.read_exact(&mut b)?;
        b.truncate(len as usize);
        Ok(String::from_utf8_lossy(&b).into_owned())
    }

    fn write_u64(&mut self, n: u64) -> Step<()> {
        self.to.write_all(&n.to_le_bytes())?;
        Ok(())
    }

    fn write_bytes(&mut self, s: &[u8]) -> Step<()> {
        self.write_u64(s.len() as u64)?;
        self.to.write_all(s)?;
        let pad = (8 - s.len() % 8) % 8;
        self.to.write_all(&[0u8; 8][..pad])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u64s(v: &[u64]) -> Vec<u8> {
        v.iter().flat_map(|n| n.to_le_bytes()).collect()
    }

    fn string(s: &str) -> Vec<u8> {
        let mut b = u64s(&[s.len() as u64]);
        b.extend_from_slice(s.as_bytes());
        b.resize(b.len() + (8 - s.len() % 8) % 8, 0);
        b
    }

    /// What a daemon speaking `version` answers to a successful AddIndirectRoot, with a log
    /// line and an activity in between.
    fn daemon_reply(version: u64) -> Vec<u8> {
        let mut r = u64s(&[WORKER_MAGIC_2, version]);
        r.extend(u64s(&[STDERR_NEXT]));
        r.extend(string("warning: something"));
        r.extend(u64s(&[STDERR_LAST]));
        r.extend(u64s(&[STDERR_START_ACTIVITY, 7, 3, 0]));
        r.extend(string("doing"));
        r.extend(u64s(&[2, 0, 42, 1]));
        r.extend(string("field"));
        r.extend(u64s(&[0, STDERR_RESULT, 7, 1, 0, STDERR_STOP_ACTIVITY, 7, STDERR_LAST, 1]));
        r
    }

    #[test]
    fn speaks_the_worker_protocol() {
        let mut out = Vec::new();
        let reply = daemon_reply((1 << 8) | 38);
        Conn { from: &reply[..], to: &mut out }.add_indirect_root(Path::new("/home/u/result")).unwrap();
        let mut expected = u64s(&[WORKER_MAGIC_1, CLIENT_VERSION, 0, 0, OP_ADD_INDIRECT_ROOT]);
        expected.extend(string("/home/u/result"));
        assert_eq!(out, expected);
    }

    #[test]
    fn an_old_daemon_gets_no_handshake_flags_it_does_not_know() {
        let mut out = Vec::new();
        let reply = u64s(&[WORKER_MAGIC_2, (1 << 8) | 10, STDERR_LAST, STDERR_LAST, 1]);
        Conn { from: &reply[..], to: &mut out }.add_indirect_root(Path::new("/r")).unwrap();
        let mut expected = u64s(&[WORKER_MAGIC_1, CLIENT_VERSION, OP_ADD_INDIRECT_ROOT]);
        expected.extend(string("/r"));
        assert_eq!(out, expected);
    }

    #[test]
    fn daemon_errors_and_strangers_are_errors() {
        let mut reply = u64s(&[WORKER_MAGIC_2, (1 << 8) | 38, STDERR_LAST, STDERR_ERROR]);
        reply.extend(string("permission denied\n"));
        reply.extend(u64s(&[1]));
        let e = Conn { from: &reply[..], to: Vec::new() }.add_indirect_root(Path::new("/r")).unwrap_err();
        assert!(matches!(&e, Failure::Daemon(m) if m == "permission denied (status 1)"), "{e:?}");

        let http = b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec();
        let e = Conn { from: &http[..], to: Vec::new() }.add_indirect_root(Path::new("/r")).unwrap_err();
        assert!(matches!(&e, Failure::Protocol(m) if m.starts_with("not a Nix daemon")), "{e:?}");

        let cut = u64s(&[WORKER_MAGIC_2, (1 << 8) | 38, STDERR_LAST]);
        let e = Conn { from: &cut[..], to: Vec::new() }.add_indirect_root(Path::new("/r")).unwrap_err();
        assert!(matches!(&e, Failure::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof), "{e:?}");
    }
}
