//! Task events, forwarded to containerd over its ttrpc socket (`TTRPC_ADDRESS`, the Events
//! service's Forward, as containerd's own shims do), else through `-publish-binary`
//! (`containerd --address A publish --topic T --namespace N`, the protobuf Any on stdin: a Go
//! binary started per event, slow on a loaded host). One thread publishes them one after
//! another (server.rs), in the order they were queued: the order containerd requires (create,
//! start, exit, delete) is the order the service queues them in.

use std::io::Write;
use std::process::{Command, Stdio};

use containerd_shim_protos::api::ForwardRequest;
use containerd_shim_protos::shim::event::Envelope;
use containerd_shim_protos::ttrpc::{self, Client};
use containerd_shim_protos::EventsClient;
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
    /// containerd's ttrpc socket, if it gave one.
    ttrpc_address: Option<String>,
    /// Connected at the first event, again after a failure.
    client: Option<EventsClient>,
}

/// How long one Forward may take.
const FORWARD_TIMEOUT_NS: i64 = 5_000_000_000;

impl Publisher {
    pub fn new(binary: String, address: String, namespace: String) -> Publisher {
        let ttrpc_address = std::env::var("TTRPC_ADDRESS").ok().filter(|a| !a.is_empty()).map(|a| {
            if a.contains("://") {
                a
            } else {
                format!("unix://{a}")
            }
        });
        Publisher {
            binary,
            address,
            namespace,
            ttrpc_address,
            client: None,
        }
    }

    /// Publishes one event, waiting for containerd; a failure is logged (containerd then
    /// misses the event, the task itself is unaffected).
    pub fn publish_logged(&mut self, event: &Event) {
        let result = match self.forward(event) {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => {
                log::error(&format!(
                    "forward {} over ttrpc: {e}; publishing with the binary",
                    event.topic
                ));
                self.publish(event)
            }
            None => self.publish(event),
        };
        if let Err(e) = result {
            log::error(&format!("publish {}: {e}", event.topic));
        }
    }

    /// Forwards over containerd's ttrpc socket; None without one.
    fn forward(&mut self, event: &Event) -> Option<Result<(), String>> {
        let address = self.ttrpc_address.as_deref()?;
        if self.client.is_none() {
            match Client::connect(address) {
                Ok(c) => self.client = Some(EventsClient::new(c)),
                Err(e) => return Some(Err(format!("connect {address}: {e}"))),
            }
        }
        let client = self.client.as_ref()?;
        let mut envelope = Envelope::new();
        envelope.timestamp = protobuf::MessageField::some(crate::rpc::timestamp(std::time::SystemTime::now()));
        envelope.namespace.clone_from(&self.namespace);
        envelope.topic = event.topic.to_string();
        envelope.event = protobuf::MessageField::some(event.payload.clone());
        let mut req = ForwardRequest::new();
        req.envelope = protobuf::MessageField::some(envelope);
        match client.forward(ttrpc::context::with_timeout(FORWARD_TIMEOUT_NS), &req) {
            Ok(_) => Some(Ok(())),
            Err(e) => {
                // Reconnect for the next one: containerd may have restarted.
                self.client = None;
                Some(Err(e.to_string()))
            }
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
