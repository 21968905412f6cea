//! A small synchronous Kafka admin client: one blocking TCP connection per
//! broker, ApiVersions on connect, every request at the highest version
//! both the broker and the `kafka-protocol` codec know.
//!
//! Requests are framed with `seedlog_net::framing::encode_request`, the
//! function the broker's tests and peer links use; responses are decoded
//! straight into the request's own response type.

use anyhow::{anyhow, bail, Context};
use bytes::{Buf, Bytes};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse,
    RequestKind, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Request, StrBytes};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

const CLIENT_ID: &str = "seedlog-admin";
/// A response larger than this is refused rather than allocated.
const RESPONSE_BYTES_MAX: usize = 100 * 1024 * 1024;

/// Kafka's name of an error code: `TOPIC_ALREADY_EXISTS`, as its tools and
/// protocol guide spell it.
pub fn error_name(code: i16) -> String {
    match kafka_protocol::ResponseError::try_from_code(code) {
        None => "NONE".to_string(),
        Some(kafka_protocol::ResponseError::Unknown(code)) => format!("UNKNOWN_ERROR_CODE_{code}"),
        Some(error) => {
            let camel = error.to_string();
            let mut name = String::with_capacity(camel.len() + 8);
            for (i, c) in camel.chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    name.push('_');
                }
                name.push(c.to_ascii_uppercase());
            }
            name
        }
    }
}

/// `Err` naming `what` and the error (and the broker's message, if any)
/// unless `code` is 0.
pub fn check(what: &str, code: i16, message: Option<&StrBytes>) -> anyhow::Result<()> {
    if code == 0 {
        return Ok(());
    }
    match message.map(|m| m.as_str()).filter(|m| !m.is_empty()) {
        Some(message) => bail!("{what}: {} ({message})", error_name(code)),
        None => bail!("{what}: {}", error_name(code)),
    }
}

pub fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

pub fn topic_name(s: &str) -> TopicName {
    TopicName(str_bytes(s))
}

/// One connection to one broker.
pub struct Connection {
    stream: TcpStream,
    address: String,
    /// api key -> (min, max) the broker serves.
    versions: BTreeMap<i16, (i16, i16)>,
    next_correlation_id: i32,
}

impl Connection {
    pub fn open(address: &str, timeout: Duration) -> anyhow::Result<Connection> {
        let addrs: Vec<_> = address
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve {address}"))?
            .collect();
        let mut last_error = None;
        let mut stream = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last_error = Some(e),
            }
        }
        let stream = match (stream, last_error) {
            (Some(stream), _) => stream,
            (None, Some(e)) => return Err(anyhow!("cannot connect to {address}: {e}")),
            (None, None) => bail!("{address} resolves to no address"),
        };
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let _ = stream.set_nodelay(true);
        let mut connection = Connection {
            stream,
            address: address.to_string(),
            versions: BTreeMap::new(),
            next_correlation_id: 1,
        };
        connection.negotiate()?;
        Ok(connection)
    }

    /// ApiVersions at v3 (Kafka 2.4 and later); a broker that does not know
    /// it answers at v0 with UNSUPPORTED_VERSION and its list, which serves
    /// as well.
    fn negotiate(&mut self) -> anyhow::Result<()> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(str_bytes("seedlog-admin"))
            .with_client_software_version(str_bytes(env!("CARGO_PKG_VERSION")));
        let frame = self.exchange(ApiKey::ApiVersions, 3, request.into())?;
        let mut body = frame.clone();
        // The v0 answer to a version the broker does not know comes with a
        // v0 header and body.
        let response = match decode_as::<ApiVersionsResponse>(&mut body, ApiKey::ApiVersions, 3) {
            Ok(r) if r.error_code == 0 => r,
            _ => {
                let mut body = frame;
                decode_as::<ApiVersionsResponse>(&mut body, ApiKey::ApiVersions, 0).with_context(
                    || format!("{}: ApiVersions answer does not decode", self.address),
                )?
            }
        };
        if response.error_code != 0 && response.api_keys.is_empty() {
            bail!(
                "{}: ApiVersions: {}",
                self.address,
                error_name(response.error_code)
            );
        }
        self.versions = response
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(())
    }

    /// The version to send `api_key` at: the highest both sides know.
    pub fn version(&self, api_key: ApiKey) -> anyhow::Result<i16> {
        let codec = api_key.valid_versions();
        let Some(&(min, max)) = self.versions.get(&(api_key as i16)) else {
            bail!(
                "the broker at {} does not serve {api_key:?} (not in its ApiVersions)",
                self.address
            );
        };
        let version = max.min(codec.max);
        if version < min.max(codec.min) {
            bail!(
                "the broker at {} serves {api_key:?} v{min}-{max}, this client v{}-{}",
                self.address,
                codec.min,
                codec.max
            );
        }
        Ok(version)
    }

    pub fn supports(&self, api_key: ApiKey) -> bool {
        self.version(api_key).is_ok()
    }

    /// Sends `request` at the negotiated version and decodes its answer.
    /// `build` gets the version, to fill in the fields that version has.
    pub fn call<R>(&mut self, build: impl FnOnce(i16) -> R) -> anyhow::Result<R::Response>
    where
        R: Request + Into<RequestKind>,
    {
        let api_key = ApiKey::try_from(R::KEY).map_err(|()| anyhow!("api key {}", R::KEY))?;
        let version = self.version(api_key)?;
        let request = build(version);
        let mut frame = self.exchange(api_key, version, request.into())?;
        decode_as::<R::Response>(&mut frame, api_key, version)
            .with_context(|| format!("{}: {api_key:?} v{version} answer", self.address))
    }

    fn exchange(
        &mut self,
        api_key: ApiKey,
        version: i16,
        request: RequestKind,
    ) -> anyhow::Result<Bytes> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let frame = seedlog_net::framing::encode_request(
            api_key,
            version,
            correlation_id,
            CLIENT_ID,
            &request,
        )?;
        let address = &self.address;
        self.stream
            .write_all(&frame)
            .with_context(|| format!("sending {api_key:?} to {address}"))?;
        let mut length = [0u8; 4];
        self.stream
            .read_exact(&mut length)
            .with_context(|| format!("waiting for the {api_key:?} answer from {address}"))?;
        let length = usize::try_from(i32::from_be_bytes(length))
            .ok()
            .filter(|l| *l <= RESPONSE_BYTES_MAX)
            .ok_or_else(|| anyhow!("{address}: bad response length"))?;
        let mut body = vec![0u8; length];
        self.stream
            .read_exact(&mut body)
            .with_context(|| format!("reading the {api_key:?} answer from {address}"))?;
        let body = Bytes::from(body);
        let got = seedlog_net::framing::response_correlation_id(&body);
        if got != Some(correlation_id) {
            bail!("{address}: answer to correlation id {got:?}, expected {correlation_id}");
        }
        Ok(body)
    }
}

fn decode_as<T: Decodable>(frame: &mut Bytes, api_key: ApiKey, version: i16) -> anyhow::Result<T> {
    ResponseHeader::decode(frame, api_key.response_header_version(version))?;
    let body = T::decode(frame, version)?;
    if frame.has_remaining() {
        bail!("{} bytes left after the body", frame.remaining());
    }
    Ok(body)
}

/// Connections to the brokers of one cluster, found from a bootstrap list.
pub struct Admin {
    timeout: Duration,
    /// Broker id -> host:port, from the last Metadata.
    brokers: BTreeMap<i32, String>,
    controller: Option<i32>,
    connections: BTreeMap<String, Connection>,
    /// The bootstrap server that answered.
    first: String,
}

impl Admin {
    /// Connects to the first bootstrap server that answers ApiVersions.
    pub fn connect(bootstrap: &str, timeout: Duration) -> anyhow::Result<Admin> {
        let servers: Vec<String> = bootstrap
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if servers.is_empty() {
            bail!("--bootstrap-server is empty");
        }
        let mut failures = Vec::new();
        for server in &servers {
            match Connection::open(server, timeout) {
                Ok(connection) => {
                    let mut admin = Admin {
                        timeout,
                        brokers: BTreeMap::new(),
                        controller: None,
                        connections: BTreeMap::new(),
                        first: server.clone(),
                    };
                    admin.connections.insert(server.clone(), connection);
                    return Ok(admin);
                }
                Err(e) => failures.push(format!("{e:#}")),
            }
        }
        bail!(
            "cannot reach any bootstrap server ({}): {}",
            servers.join(","),
            failures.join("; ")
        )
    }

    /// The bootstrap connection (any broker will do).
    pub fn any(&mut self) -> anyhow::Result<&mut Connection> {
        let first = self.first.clone();
        self.at(&first)
    }

    fn at(&mut self, address: &str) -> anyhow::Result<&mut Connection> {
        if !self.connections.contains_key(address) {
            let connection = Connection::open(address, self.timeout)?;
            self.connections.insert(address.to_string(), connection);
        }
        Ok(self.connections.get_mut(address).expect("just inserted"))
    }

    /// The connection to broker `id`, as the last Metadata placed it.
    pub fn node(&mut self, id: i32) -> anyhow::Result<&mut Connection> {
        if !self.brokers.contains_key(&id) {
            self.metadata(Some(&[]))?;
        }
        let address = self
            .brokers
            .get(&id)
            .cloned()
            .ok_or_else(|| anyhow!("broker {id} is not in the cluster's metadata"))?;
        self.at(&address)
    }

    /// A broker that takes controller requests (CreateTopics and the like):
    /// Metadata's controller id. KRaft brokers forward to the active
    /// controller, so any broker would do; seedlog's answer names the
    /// active controller.
    pub fn controller(&mut self) -> anyhow::Result<&mut Connection> {
        if self.controller.is_none() {
            self.metadata(Some(&[]))?;
        }
        match self.controller {
            Some(id) if id >= 0 && self.brokers.contains_key(&id) => self.node(id),
            _ => self.any(),
        }
    }

    /// Forgets the controller, after NOT_CONTROLLER.
    pub fn forget_controller(&mut self) {
        self.controller = None;
    }

    pub fn broker_ids(&self) -> Vec<i32> {
        self.brokers.keys().copied().collect()
    }

    /// Metadata of `topics` (`None`: every topic; `Some(&[])`: none, only
    /// the brokers). Remembers the brokers and the controller.
    pub fn metadata(&mut self, topics: Option<&[String]>) -> anyhow::Result<MetadataResponse> {
        let response = self.any()?.call(|version| {
            let topics = topics.map(|names| {
                names
                    .iter()
                    .map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(n))))
                    .collect()
            });
            let mut request = MetadataRequest::default().with_topics(topics);
            if version >= 4 {
                request = request.with_allow_auto_topic_creation(false);
            }
            request
        })?;
        if response.error_code != 0 {
            check("metadata", response.error_code, None)?;
        }
        self.brokers = response
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
            .collect();
        self.controller = Some(response.controller_id.0);
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_are_kafkas() {
        assert_eq!(error_name(36), "TOPIC_ALREADY_EXISTS");
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(6), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(0), "NONE");
        assert_eq!(error_name(9999), "UNKNOWN_ERROR_CODE_9999");
    }
}
