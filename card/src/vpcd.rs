//! The virtual card's side of vsmartcard's vpcd protocol: we are the TCP client of the `vpcd`
//! reader driver inside `pcscd`. Every message is a big-endian `u16` length and a payload; a
//! 1-byte payload is a control byte (00 off, 01 on, 02 reset, 04 get ATR), anything longer is
//! a C-APDU answered with the R-APDU. TCP_NODELAY is set and TCP_QUICKACK re-armed before
//! every read (vpcd 0.8 sends length and payload separately; without it each message stalls
//! ~40 ms on delayed ACK).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use socket2::SockRef;

use crate::applet::Applet;

/// Options of a running virtual card.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// vpcd address (`127.0.0.1:35963` is reader `Virtual PCD 00 00`).
    pub addr: String,
    /// The ATR.
    pub atr: Vec<u8>,
    /// Where the card state lives (saved before any response that follows a change).
    pub state_file: PathBuf,
    /// Fault injection for tests: after this many APDUs the card is "pulled" (the process
    /// exits without answering the next one).
    pub pull_after: Option<u64>,
}

/// How a card session ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// vpcd closed the connection (pcscd stopped).
    ReaderGone,
    /// The fault-injection limit was reached: the card was pulled.
    Pulled,
}

fn read_msg(s: &mut TcpStream) -> io::Result<Option<Vec<u8>>> {
    SockRef::from(&*s).set_tcp_quickack(true)?;
    let mut len = [0u8; 2];
    match s.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    SockRef::from(&*s).set_tcp_quickack(true)?;
    s.read_exact(&mut msg)?;
    Ok(Some(msg))
}

fn write_msg(s: &mut TcpStream, payload: &[u8]) -> io::Result<()> {
    let len = u16::try_from(payload.len()).map_err(|_| io::Error::other("response over 65535 bytes"))?;
    let mut frame = Vec::with_capacity(payload.len() + 2);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(payload);
    s.write_all(&frame) // one write: length and payload in one segment
}

/// Connects to vpcd, retrying until it accepts (pcscd may still be starting).
pub fn connect(addr: &str, timeout: Duration) -> io::Result<TcpStream> {
    let start = std::time::Instant::now();
    loop {
        match TcpStream::connect(addr) {
            Ok(s) => {
                s.set_nodelay(true)?;
                return Ok(s);
            }
            Err(e) if start.elapsed() < timeout => {
                tracing::debug!("vpcd at {addr} not there yet: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(io::Error::new(e.kind(), format!("cannot reach vpcd at {addr}: {e}"))),
        }
    }
}

/// Serves one inserted card until vpcd closes the connection or the card is pulled.
pub fn serve(stream: &mut TcpStream, applet: &mut Applet, opts: &SimOptions) -> Result<Ended, crate::Error> {
    let mut apdus = 0u64;
    loop {
        let Some(msg) = read_msg(stream)? else { return Ok(Ended::ReaderGone) };
        let answer = match msg.as_slice() {
            [0x04] => Some(opts.atr.clone()),
            [0x00..=0x02] => {
                applet.reset();
                None
            }
            [_] => None,
            apdu => {
                if opts.pull_after.is_some_and(|n| apdus >= n) {
                    return Ok(Ended::Pulled);
                }
                apdus += 1;
                let r = applet.process(apdu);
                if applet.take_dirty() {
                    // Durable before the answer: an acknowledged write survives a pull.
                    applet.state().save(&opts.state_file)?;
                }
                Some(r)
            }
        };
        if let Some(a) = answer {
            write_msg(stream, &a)?;
        }
    }
}
