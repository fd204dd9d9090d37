//! The systemd cgroup driver (`--systemd-cgroup`). The container's cgroup is a transient unit
//! that systemd creates and owns: a scope started with init's pid and `Delegate=yes`, so systemd
//! neither trims it nor fights over it. Limits are given to systemd as unit properties (it
//! re-applies them on reload) and written to the cgroup files too (systemd has no property for
//! most OCI fields). Deleting the container stops the unit; systemd removes the cgroup.

mod dbus;
mod properties;

use std::time::Duration;

use oci_spec::runtime::LinuxResources;

use crate::error::{Error, Result};
use crate::paths::SystemdUnit;
use dbus::{Connection, DbusError, Message, Value};

const SYSTEMD: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const JOB_TIMEOUT: Duration = Duration::from_secs(30);

/// The reply to a start request: the job systemd queued.
pub struct StartJob(Vec<Value>);

/// A connection to systemd's manager.
pub struct Manager {
    conn: Connection,
}

fn failed(op: &'static str, unit: &str, e: impl std::fmt::Display) -> Error {
    Error::Systemd {
        op,
        unit: unit.to_string(),
        msg: e.to_string(),
    }
}

impl Manager {
    /// Connects over the system bus (or systemd's private socket).
    pub fn connect() -> Result<Manager> {
        let conn = Connection::system().map_err(|e| Error::SystemdUnavailable {
            path: String::new(),
            msg: format!("cannot reach systemd over D-Bus: {e}"),
        })?;
        Ok(Manager { conn })
    }

    fn call(&mut self, member: &str, args: &[Value]) -> std::result::Result<Vec<Value>, DbusError> {
        self.conn.call(SYSTEMD, MANAGER_PATH, MANAGER, member, args)
    }

    /// systemd's own root cgroup ("/" unless systemd runs in a container or a cgroup
    /// namespace of its own), under which it places every unit.
    pub fn root_cgroup(&mut self) -> Result<String> {
        let reply = self
            .conn
            .call(
                SYSTEMD,
                MANAGER_PATH,
                "org.freedesktop.DBus.Properties",
                "Get",
                &[Value::str(MANAGER), Value::str("ControlGroup")],
            )
            .map_err(|e| failed("read ControlGroup of", "the manager", e))?;
        match reply.first() {
            Some(Value::Variant(v)) => Ok(v.as_str().unwrap_or("").to_string()),
            other => Err(failed(
                "read ControlGroup of",
                "the manager",
                format!("unexpected reply {other:?}"),
            )),
        }
    }

    /// Asks systemd to start the container's transient unit: a scope around `pid`, or an empty
    /// slice unit (the caller adds the process). Once this returns the unit exists and is ours;
    /// [`Manager::wait_started`] waits for systemd to finish starting it.
    pub fn start(
        &mut self,
        unit: &SystemdUnit,
        pid: i32,
        description: &str,
        r: Option<&LinuxResources>,
        v2: bool,
    ) -> Result<StartJob> {
        let name = unit.unit.as_str();
        let mut props = if unit.is_slice() {
            properties::unit_properties(description, None, None, v2)
        } else {
            properties::unit_properties(description, Some(&unit.slice), Some(pid), v2)
        };
        props.extend(r.map(|r| properties::resource_properties(r, v2)).unwrap_or_default());
        self.subscribe()
            .map_err(|e| failed("subscribe to job signals for", name, e))?;
        let args = [
            Value::str(name),
            Value::str("replace"),
            properties::to_dbus(props),
            Value::Array("(sa(sv))".into(), Vec::new()),
        ];
        let reply = self
            .call("StartTransientUnit", &args)
            .map_err(|e| failed("start", name, e))?;
        Ok(StartJob(reply))
    }

    /// Waits until systemd has run the start job; it must have succeeded.
    pub fn wait_started(&mut self, job: StartJob, unit: &SystemdUnit) -> Result<()> {
        self.wait_job(&job.0, "start", &unit.unit)
    }

    /// Hands changed limits to systemd (runtime only: they last until the unit stops).
    pub fn set_properties(&mut self, unit: &SystemdUnit, r: &LinuxResources, v2: bool) -> Result<()> {
        self.set(unit, properties::resource_properties(r, v2))
    }

    /// Tells systemd the v1 device list the kernel holds for the container (see
    /// [`properties::device_properties`]).
    pub fn set_device_list(&mut self, unit: &SystemdUnit, devices_list: &str) -> Result<()> {
        self.set(
            unit,
            properties::device_properties(devices_list, &properties::proc_devices_name),
        )
    }

    fn set(&mut self, unit: &SystemdUnit, props: Vec<properties::Property>) -> Result<()> {
        if props.is_empty() {
            return Ok(());
        }
        let args = [Value::str(&unit.unit), Value::Bool(true), properties::to_dbus(props)];
        self.call("SetUnitProperties", &args)
            .map_err(|e| failed("set properties of", &unit.unit, e))?;
        Ok(())
    }

    /// Stops the unit (systemd removes its cgroup) and forgets a failed state. A unit that is
    /// already gone (its processes exited, so systemd collected it) is not an error.
    pub fn stop(&mut self, unit: &SystemdUnit) -> Result<()> {
        let name = unit.unit.as_str();
        self.subscribe()
            .map_err(|e| failed("subscribe to job signals for", name, e))?;
        match self.call("StopUnit", &[Value::str(name), Value::str("replace")]) {
            Ok(reply) => self.wait_job(&reply, "stop", name)?,
            Err(DbusError::Remote { name: err, .. }) if err.ends_with(".NoSuchUnit") => {}
            Err(e) => return Err(failed("stop", name, e)),
        }
        // Nothing to reset unless it failed; the answer does not matter.
        let _ = self.call("ResetFailedUnit", &[Value::str(name)]);
        Ok(())
    }

    /// Asks for job signals: a bus daemon forwards them only to connections with a match rule,
    /// and systemd sends them only to subscribers.
    fn subscribe(&mut self) -> std::result::Result<(), DbusError> {
        if self.conn.via_bus_daemon() {
            let rule = format!(
                "type='signal',sender='{SYSTEMD}',path='{MANAGER_PATH}',interface='{MANAGER}',member='JobRemoved'"
            );
            self.conn.call(
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "AddMatch",
                &[Value::str(rule)],
            )?;
        }
        match self.call("Subscribe", &[]) {
            // Already subscribed on this connection.
            Err(DbusError::Remote { name, .. }) if name.ends_with(".AlreadySubscribed") => Ok(()),
            r => r.map(drop),
        }
    }

    /// Waits for the JobRemoved signal of the job a call returned; its result must be "done".
    fn wait_job(&mut self, reply: &[Value], op: &'static str, unit: &str) -> Result<()> {
        let Some(job) = reply.first().and_then(Value::as_str).map(str::to_string) else {
            return Err(failed(op, unit, format!("unexpected reply {reply:?}")));
        };
        let is_ours = |m: &Message| {
            m.member.as_deref() == Some("JobRemoved") && m.body.get(1).and_then(Value::as_str) == Some(job.as_str())
        };
        let signal = self
            .conn
            .wait_signal(JOB_TIMEOUT, is_ours)
            .map_err(|e| failed(op, unit, e))?;
        match signal.body.get(3).and_then(Value::as_str) {
            Some("done") => Ok(()),
            result => Err(failed(
                op,
                unit,
                format!("the job ended with result {:?}", result.unwrap_or("?")),
            )),
        }
    }
}
