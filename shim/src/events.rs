//! Task events, forwarded to containerd through `-publish-binary` (`containerd --address A
//! publish --topic T --namespace N`, the protobuf Any on stdin). One thread publishes them one
//! after another (server.rs), in the order they were queued: the order containerd requires (create, start,
//! exit, delete) is the order the service queues them in.

use std::io::Write;
use std::process::{Command, Stdio};

use protobuf::well_known_types::any::Any;
use protobuf::MessageFull;

use crate::log;

pub struct Event {
    pub topic: &'static str,
    pub payload: Any,
}

impl Event {
    /// Packs an event as containerd's typeurl names it: the message's full protobuf name.
    pub fn new<M: MessageFull>(topic: &'static str, msg: &M) -> Option<Event> {
        match msg.write_to_bytes() {
            Ok(value) => {
                let mut payload = Any::new();
                payload.type_url = M::descriptor().full_name().to_string();
                payload.value = value;
                Some(Event { topic, payload })
            }
            Err(e) => {
                log::error(&format!("encode event {topic}: {e}"));
                None
            }
        }
    }
}

pub struct Publisher {
    binary: String,
    address: String,
    namespace: String,
}

impl Publisher {
    pub fn new(binary: String, address: String, namespace: String) -> Publisher {
        Publisher {
            binary,
            address,
            namespace,
        }
    }

    /// Publishes one event, waiting for the binary; a failure is logged (containerd then
    /// misses the event, the task itself is unaffected).
    pub fn publish_logged(&self, event: &Event) {
        if let Err(e) = self.publish(event) {
            log::error(&format!("publish {}: {e}", event.topic));
        }
    }

    fn publish(&self, event: &Event) -> Result<(), String> {
        if self.binary.is_empty() {
            return Err("no -publish-binary".into());
        }
        let data = protobuf::Message::write_to_bytes(&event.payload).map_err(|e| e.to_string())?;
        let mut child = Command::new(&self.binary)
            .args(["--address", &self.address, "publish", "--topic", event.topic])
            .args(["--namespace", &self.namespace])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{}: {e}", self.binary))?;
        if let Some(mut stdin) = child.stdin.take() {
            // The binary may fail before reading: its status says why, not EPIPE.
            let _ = stdin.write_all(&data);
        }
        let out = child.wait_with_output().map_err(|e| format!("{}: {e}", self.binary))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} {}: {}",
                self.binary,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}
