//! The agent's API: one JSON request a connection, on one line; the answer is one JSON line
//! `{"ok":true,"data":...}` or `{"ok":false,"error":"..."}`, or for streams (logs -f,
//! events -w) any number of `{"line":"..."}` before it.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// A document of `apply` or `delete`, with where it came from (for error messages).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Document {
    pub source: String,
    pub text: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    Apply {
        documents: Vec<Document>,
    },
    Delete {
        documents: Vec<Document>,
    },
    DeletePod {
        namespace: String,
        name: String,
    },
    GetPods {
        namespace: Option<String>,
    },
    GetPod {
        namespace: String,
        name: String,
    },
    Describe {
        namespace: String,
        name: String,
    },
    Logs(LogsRequest),
    ExecTarget {
        namespace: String,
        name: String,
        container: Option<String>,
    },
    Events {
        watch: bool,
        namespace: Option<String>,
    },
    ImagesImport {
        path: String,
    },
    ImagesPull {
        reference: String,
    },
    ImagesList,
    ImagesRemove {
        reference: String,
    },
    ImagesPrune,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LogsRequest {
    pub namespace: String,
    pub name: String,
    pub container: Option<String>,
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
}

/// What `exec` needs to enter a container itself (the client is single-threaded; the agent
/// is not).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExecTarget {
    pub moor_root: String,
    pub id: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Reply {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ok: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<String>,
}

pub fn send(stream: &mut impl Write, reply: &Reply) -> std::io::Result<()> {
    let mut data = serde_json::to_vec(reply).map_err(std::io::Error::other)?;
    data.push(b'\n');
    stream.write_all(&data)?;
    stream.flush()
}

/// Sends `request` to the agent at `socket`; `on_line` gets every streamed line; returns the
/// final data.
pub fn call(socket: &Path, request: &Request, mut on_line: impl FnMut(&str)) -> Result<serde_json::Value> {
    let mut stream = UnixStream::connect(socket)
        .with_context(|| format!("cannot connect to the moorlet agent at {}", socket.display()))?;
    let mut data = serde_json::to_vec(request)?;
    data.push(b'\n');
    stream
        .write_all(&data)
        .context("cannot send the request to the agent")?;
    let reader = BufReader::new(stream);
    for line in reader.lines() {
        let line = line.context("cannot read the agent's answer")?;
        let reply: Reply = serde_json::from_str(&line).context("the agent's answer is not JSON")?;
        if let Some(l) = reply.line {
            on_line(&l);
            continue;
        }
        if reply.ok == Some(true) {
            return Ok(reply.data.unwrap_or_default());
        }
        anyhow::bail!("{}", reply.error.unwrap_or_else(|| "the agent failed".into()));
    }
    anyhow::bail!("the agent closed the connection without an answer")
}
