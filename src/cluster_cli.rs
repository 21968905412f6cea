//! `seedlog cluster`: a whole cluster on 127.0.0.1 in one command, one
//! `seedlog serve` child process per node.
//!
//! Node N (1-based) listens for clients on `base-port + N - 1` and for its
//! peers on `base-port + 100 + N - 1`, sits in rack `az-N` and keeps its
//! data in `DIR/node-N`. Once every child has printed its listening line,
//! this prints one line per node and then `BOOTSTRAP=...`. It forwards
//! SIGINT or SIGTERM to the children as SIGTERM, waits for them, and kills
//! those that do not stop in time. A child that dies is reported on stderr
//! and not restarted: the cluster is there to be watched failing over.

use crate::voters::Voters;
use anyhow::{bail, Context};
use clap::Args;
use seedlog_core::node::PeerAddress;
use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

/// The controller listeners sit this far above the client listeners.
const CONTROLLER_PORT_OFFSET: u16 = 100;
/// Fewer nodes than the port offset, so the two port ranges never meet.
const BROKERS_MAX: u16 = 16;
/// What `seedlog serve` prints once it accepts clients.
const LISTENING_PREFIX: &str = "seedlog listening on ";
/// How long a node may take to recover its logs and listen.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long nodes get to stop after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// How often exited children are looked for.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Events from the signal and pipe-reading threads not yet handled; the
/// readers wait when it is full.
const EVENTS_QUEUED_MAX: usize = 256;

#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// How many nodes: ids 1 to N, each a voter and a broker, each in its
    /// own rack (az-1, az-2, ...).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=i64::from(BROKERS_MAX)))]
    brokers: u16,

    /// Node N keeps its data in DIR/node-N; created if missing.
    #[arg(long, default_value = "./seedlog-cluster")]
    data_dir: PathBuf,

    /// Node N listens for clients on 127.0.0.1:P+N-1 and for the other
    /// nodes on 127.0.0.1:P+100+N-1.
    #[arg(long, default_value_t = 9092, value_parser = clap::value_parser!(u16).range(1..))]
    base_port: u16,
}

/// One node as it is to be started.
#[derive(Debug, Clone)]
struct NodePlan {
    id: i32,
    rack: String,
    listen: SocketAddr,
    controller: SocketAddr,
    data_dir: PathBuf,
}

fn plan(args: &ClusterArgs) -> anyhow::Result<Vec<NodePlan>> {
    let highest =
        u32::from(args.base_port) + u32::from(CONTROLLER_PORT_OFFSET) + u32::from(args.brokers) - 1;
    if highest > u32::from(u16::MAX) {
        bail!(
            "--base-port {} is too high for --brokers {}: the controller ports would reach {highest}",
            args.base_port,
            args.brokers
        );
    }
    let loopback = Ipv4Addr::LOCALHOST.into();
    let plan = (1..=args.brokers)
        .map(|n| {
            // Checked above: the highest port fits.
            let listen_port = args.base_port + (n - 1);
            NodePlan {
                id: i32::from(n),
                rack: format!("az-{n}"),
                listen: SocketAddr::new(loopback, listen_port),
                controller: SocketAddr::new(loopback, listen_port + CONTROLLER_PORT_OFFSET),
                data_dir: args.data_dir.join(format!("node-{n}")),
            }
        })
        .collect();
    Ok(plan)
}

fn voters(plan: &[NodePlan]) -> Voters {
    let voters = plan
        .iter()
        .map(|node| {
            let address = PeerAddress {
                host: node.controller.ip().to_string(),
                port: node.controller.port(),
            };
            (node.id, address)
        })
        .collect();
    Voters(voters)
}

/// What the helper threads tell the main one.
#[derive(Debug)]
enum Event {
    Signal(&'static str),
    Listening { id: i32, address: String },
}

pub fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let plan = plan(&args)?;
    let voters = voters(&plan);
    let exe = std::env::current_exe().context("cannot find the seedlog executable")?;
    let (events_tx, events) = mpsc::sync_channel(EVENTS_QUEUED_MAX);
    // Before any child exists: a Ctrl-C during start-up must stop them too.
    watch_signals(events_tx.clone())?;
    let mut nodes = Nodes::default();
    for node in &plan {
        nodes.spawn(&exe, node, &voters, events_tx.clone())?;
    }
    drop(events_tx);

    if let Some(signal) = wait_until_listening(&mut nodes, &events)? {
        eprintln!("seedlog cluster: {signal} received while starting; stopping");
        nodes.stop();
        return Ok(());
    }
    for node in &nodes.running {
        println!(
            "node={} rack={} listener={} controller={} pid={}",
            node.plan.id,
            node.plan.rack,
            node.plan.listen,
            node.plan.controller,
            node.child.id()
        );
    }
    let bootstrap: Vec<String> = plan.iter().map(|n| n.listen.to_string()).collect();
    println!("BOOTSTRAP={}", bootstrap.join(","));

    let signal = supervise(&mut nodes, &events)?;
    eprintln!("seedlog cluster: {signal} received; stopping every node");
    nodes.stop();
    Ok(())
}

/// Registers SIGINT and SIGTERM handlers now, and reports the first that
/// arrives from a thread of its own.
fn watch_signals(events: SyncSender<Event>) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let (mut interrupt, mut terminate) = runtime
        .block_on(async {
            Ok::<_, std::io::Error>((
                signal(SignalKind::interrupt())?,
                signal(SignalKind::terminate())?,
            ))
        })
        .context("cannot listen for SIGINT and SIGTERM")?;
    std::thread::Builder::new()
        .name("signals".to_string())
        .spawn(move || {
            let name = runtime.block_on(async {
                tokio::select! {
                    _ = interrupt.recv() => "SIGINT",
                    _ = terminate.recv() => "SIGTERM",
                }
            });
            let _ = events.send(Event::Signal(name));
        })?;
    Ok(())
}

struct Running {
    plan: NodePlan,
    child: Child,
    listener: Option<String>,
    exited: Option<ExitStatus>,
}

/// The children. Dropping it stops those still running, so that no error
/// path leaves a node behind.
#[derive(Default)]
struct Nodes {
    running: Vec<Running>,
}

impl Nodes {
    fn spawn(
        &mut self,
        exe: &std::path::Path,
        node: &NodePlan,
        voters: &Voters,
        events: SyncSender<Event>,
    ) -> anyhow::Result<()> {
        let mut command = Command::new(exe);
        command
            .arg("serve")
            .args(["--node-id", &node.id.to_string()])
            .args(["--rack", &node.rack])
            .args(["--listen", &node.listen.to_string()])
            .args(["--controller-listen", &node.controller.to_string()])
            .args(["--voters", &voters.to_string()])
            .arg("--data-dir")
            .arg(&node.data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        die_with_parent(&mut command);
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start node {}", node.id))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let id = node.id;
        std::thread::Builder::new()
            .name(format!("node-{id}-stdout"))
            .spawn(move || watch_stdout(id, stdout, events))?;
        std::thread::Builder::new()
            .name(format!("node-{id}-stderr"))
            .spawn(move || forward_stderr(id, stderr))?;
        self.running.push(Running {
            plan: node.clone(),
            child,
            listener: None,
            exited: None,
        });
        Ok(())
    }

    fn get_mut(&mut self, id: i32) -> &mut Running {
        self.running
            .iter_mut()
            .find(|n| n.plan.id == id)
            .expect("events name started nodes")
    }

    /// Reaps the children that have exited since the last look, and
    /// returns them.
    fn reap(&mut self) -> Vec<(i32, u32, ExitStatus)> {
        let mut exited = Vec::new();
        for node in self.running.iter_mut().filter(|n| n.exited.is_none()) {
            if let Ok(Some(status)) = node.child.try_wait() {
                node.exited = Some(status);
                exited.push((node.plan.id, node.child.id(), status));
            }
        }
        exited
    }

    fn alive(&self) -> usize {
        self.running.iter().filter(|n| n.exited.is_none()).count()
    }

    /// SIGTERM to every child still running, then SIGKILL to those still
    /// running after `STOP_TIMEOUT`.
    fn stop(&mut self) {
        for node in self.running.iter().filter(|n| n.exited.is_none()) {
            let pid = libc::pid_t::try_from(node.child.id()).expect("pids fit pid_t");
            // SAFETY: kill(2) with a pid of our own unreaped child, which
            // cannot have been recycled for another process.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while self.alive() > 0 && Instant::now() < deadline {
            self.reap();
            std::thread::sleep(POLL_INTERVAL);
        }
        for node in self.running.iter_mut().filter(|n| n.exited.is_none()) {
            eprintln!(
                "seedlog cluster: node {} did not stop within {STOP_TIMEOUT:?}; killing it",
                node.plan.id
            );
            let _ = node.child.kill();
            node.exited = node.child.wait().ok();
        }
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The child gets SIGTERM when this process dies, even by SIGKILL, so that
/// a killed `seedlog cluster` leaves no node behind.
fn die_with_parent(command: &mut Command) {
    let parent = libc::pid_t::try_from(std::process::id()).expect("pids fit pid_t");
    // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) run
    // between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent died before prctl took effect: nobody would stop
            // this child.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

fn watch_stdout(id: i32, stdout: impl Read, events: SyncSender<Event>) {
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if let Some(address) = line.strip_prefix(LISTENING_PREFIX) {
            let address = address.trim().to_string();
            if events.send(Event::Listening { id, address }).is_err() {
                return;
            }
        }
    }
}

/// The nodes' logs, each line marked with its node.
fn forward_stderr(id: i32, stderr: impl Read) {
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        eprintln!("node-{id} | {line}");
    }
}

/// Waits for every node's listening line. `Some(signal)`: a signal came
/// first. A node that exits first, or the timeout, is an error.
fn wait_until_listening(
    nodes: &mut Nodes,
    events: &Receiver<Event>,
) -> anyhow::Result<Option<&'static str>> {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    while nodes.running.iter().any(|n| n.listener.is_none()) {
        if Instant::now() >= deadline {
            let waiting: Vec<i32> = nodes
                .running
                .iter()
                .filter(|n| n.listener.is_none())
                .map(|n| n.plan.id)
                .collect();
            bail!("nodes {waiting:?} did not start listening within {STARTUP_TIMEOUT:?}");
        }
        match next_event(events) {
            Some(Event::Signal(signal)) => return Ok(Some(signal)),
            Some(Event::Listening { id, address }) => nodes.get_mut(id).listener = Some(address),
            None => {}
        }
        if let Some((id, _, status)) = nodes.reap().first() {
            bail!("node {id} exited before it was listening ({status}); its log is above");
        }
    }
    Ok(None)
}

/// The next event, or `None` after `POLL_INTERVAL` without one.
fn next_event(events: &Receiver<Event>) -> Option<Event> {
    match events.recv_timeout(POLL_INTERVAL) {
        Ok(event) => Some(event),
        Err(RecvTimeoutError::Timeout) => None,
        // Every helper thread is gone, the signal watcher with them: keep
        // polling the children without spinning.
        Err(RecvTimeoutError::Disconnected) => {
            std::thread::sleep(POLL_INTERVAL);
            None
        }
    }
}

/// Reports nodes that die until a signal comes; returns its name. Fails
/// once every node is gone.
fn supervise(nodes: &mut Nodes, events: &Receiver<Event>) -> anyhow::Result<&'static str> {
    loop {
        if let Some(Event::Signal(signal)) = next_event(events) {
            return Ok(signal);
        }
        for (id, pid, status) in nodes.reap() {
            eprintln!("seedlog cluster: node {id} (pid {pid}) exited: {status}");
        }
        if nodes.alive() == 0 {
            bail!("every node has exited");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(brokers: u16, base_port: u16) -> ClusterArgs {
        ClusterArgs {
            brokers,
            data_dir: PathBuf::from("/tmp/c"),
            base_port,
        }
    }

    #[test]
    fn plans_ports_racks_and_directories() {
        let plan = plan(&args(3, 9092)).unwrap();
        let ports: Vec<(u16, u16)> = plan
            .iter()
            .map(|n| (n.listen.port(), n.controller.port()))
            .collect();
        assert_eq!(ports, [(9092, 9192), (9093, 9193), (9094, 9194)]);
        assert_eq!(plan[2].rack, "az-3");
        assert_eq!(plan[2].data_dir, PathBuf::from("/tmp/c/node-3"));
        assert!(plan.iter().all(|n| n.listen.ip().is_loopback()));
        assert_eq!(
            voters(&plan).to_string(),
            "1@127.0.0.1:9192,2@127.0.0.1:9193,3@127.0.0.1:9194"
        );
    }

    #[test]
    fn a_base_port_without_room_is_refused() {
        let error = plan(&args(3, 65_434)).unwrap_err().to_string();
        assert!(
            error.contains("--base-port 65434 is too high for --brokers 3"),
            "{error}"
        );
        assert!(plan(&args(3, 65_433)).is_ok());
    }
}
