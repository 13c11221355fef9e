//! A minimal RESP2/RESP3 client over a plain socket, for what redis-rs does not expose simply on
//! a blocking connection: RESP3 push frames (client tracking invalidations) and Pub/Sub messages
//! read in order with the replies around them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A frame as the server sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    Null,
    Array(Vec<Frame>),
    /// RESP3 `>`: out-of-band data such as `invalidate`.
    Push(Vec<Frame>),
    /// RESP3 map, as its flattened key/value list.
    Map(Vec<Frame>),
    /// Any other RESP3 scalar (double, boolean, big number, verbatim string), as text.
    Other(String),
}

impl Frame {
    pub fn text(&self) -> String {
        match self {
            Frame::Simple(s) | Frame::Error(s) | Frame::Other(s) => s.clone(),
            Frame::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
            Frame::Int(i) => i.to_string(),
            _ => String::new(),
        }
    }

    pub fn items(&self) -> &[Frame] {
        match self {
            Frame::Array(items) | Frame::Push(items) | Frame::Map(items) => items,
            _ => &[],
        }
    }
}

pub struct RawClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl RawClient {
    pub fn connect(port: u16) -> RawClient {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        // A test waiting for a frame that never comes fails instead of hanging.
        stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        let writer = stream.try_clone().expect("clone socket");
        RawClient { reader: BufReader::new(stream), writer }
    }

    pub fn send(&mut self, args: &[&str]) {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&out).expect("send");
    }

    /// Sends a command and returns its reply, skipping nothing: call it only where no push or
    /// message can arrive first (before tracking or subscribing).
    pub fn call(&mut self, args: &[&str]) -> Frame {
        self.send(args);
        self.read()
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read a frame");
        assert!(line.ends_with("\r\n"), "connection closed or malformed frame: {line:?}");
        line.truncate(line.len() - 2);
        line
    }

    pub fn read(&mut self) -> Frame {
        let line = self.line();
        let (kind, rest) = line.split_at(1);
        let count = || rest.parse::<i64>().expect("length");
        match kind {
            "+" => Frame::Simple(rest.to_string()),
            "-" => Frame::Error(rest.to_string()),
            ":" => Frame::Int(count()),
            "_" => Frame::Null,
            "$" | "=" if count() < 0 => Frame::Null,
            "$" | "=" => {
                let mut data = vec![0; count() as usize + 2];
                self.reader.read_exact(&mut data).expect("bulk");
                data.truncate(data.len() - 2);
                Frame::Bulk(data)
            }
            "*" if count() < 0 => Frame::Null,
            "*" | "~" => Frame::Array((0..count()).map(|_| self.read()).collect()),
            ">" => Frame::Push((0..count()).map(|_| self.read()).collect()),
            "%" | "|" => Frame::Map((0..2 * count()).map(|_| self.read()).collect()),
            _ => Frame::Other(rest.to_string()),
        }
    }

    /// Sends PING and returns every frame that arrives before its reply (pushes, Pub/Sub
    /// messages): everything the server sent this client up to now.
    pub fn frames_before_ping(&mut self) -> Vec<Frame> {
        self.send(&["PING"]);
        let mut before = Vec::new();
        loop {
            let frame = self.read();
            let is_pong = match &frame {
                Frame::Simple(s) => s == "PONG",
                // RESP2 in subscribed mode answers PING with ["pong", ""].
                Frame::Array(items) => items.first().is_some_and(|f| f.text() == "pong") && items.len() == 2,
                _ => false,
            };
            if is_pong {
                return before;
            }
            before.push(frame);
        }
    }
}
