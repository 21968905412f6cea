//! `--voters ID@HOST:PORT,...`: the controller quorum as Kafka's
//! `controller.quorum.voters` writes it. Parsed by `seedlog serve`, written
//! by `seedlog cluster` for its children.

use seedlog_core::node::PeerAddress;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// More voters than any quorum needs: a typo such as a pasted host list
/// should fail here, not start a 500-node election.
const VOTERS_MAX: usize = 64;

/// Every voter's node id and controller listener, ordered by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voters(pub BTreeMap<i32, PeerAddress>);

impl FromStr for Voters {
    type Err = String;

    /// Readable errors, each naming the entry at fault: clap puts them
    /// after "invalid value ... for '--voters'".
    fn from_str(text: &str) -> Result<Voters, String> {
        let mut voters = BTreeMap::new();
        for entry in text.split(',').map(str::trim) {
            let (id, address) = parse_voter(entry)?;
            if let Some((other, _)) = voters.iter().find(|(_, a)| **a == address) {
                return Err(format!(
                    "nodes {other} and {id} both have the address {}",
                    Address(&address)
                ));
            }
            if voters.insert(id, address).is_some() {
                return Err(format!("node id {id} appears twice"));
            }
            if voters.len() > VOTERS_MAX {
                return Err(format!("more than {VOTERS_MAX} voters"));
            }
        }
        Ok(Voters(voters))
    }
}

fn parse_voter(entry: &str) -> Result<(i32, PeerAddress), String> {
    const EXPECTED: &str = "expected ID@HOST:PORT, such as 1@127.0.0.1:9093";
    if entry.is_empty() {
        return Err(format!("an empty entry; {EXPECTED}"));
    }
    let (id, address) = entry
        .split_once('@')
        .ok_or_else(|| format!("`{entry}` has no '@'; {EXPECTED}"))?;
    let id: i32 = id
        .parse()
        .ok()
        .filter(|id| *id >= 0)
        .ok_or_else(|| format!("`{id}` in `{entry}` is not a node id (an integer >= 0)"))?;
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("`{address}` in `{entry}` has no port; {EXPECTED}"))?;
    // An IPv6 address comes in brackets, as in a URL: [::1]:9093.
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || host.contains(['[', ']', '@', '/']) {
        return Err(format!(
            "`{host}` in `{entry}` is not a host name or IP address"
        ));
    }
    let port: u16 = port
        .parse()
        .ok()
        .filter(|port| *port > 0)
        .ok_or_else(|| format!("`{port}` in `{entry}` is not a port (1 to 65535)"))?;
    let address = PeerAddress {
        host: host.to_string(),
        port,
    };
    Ok((id, address))
}

/// `HOST:PORT`, with brackets around an IPv6 host.
pub struct Address<'a>(pub &'a PeerAddress);

impl fmt::Display for Address<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let PeerAddress { host, port } = self.0;
        if host.contains(':') {
            write!(f, "[{host}]:{port}")
        } else {
            write!(f, "{host}:{port}")
        }
    }
}

impl fmt::Display for Voters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (id, address)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{id}@{}", Address(address))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        text.parse::<Voters>().expect_err(text)
    }

    #[test]
    fn parses_and_prints_a_quorum() {
        let text = "1@127.0.0.1:9192,2@127.0.0.1:9193,3@[::1]:9194";
        let voters: Voters = text.parse().unwrap();
        assert_eq!(voters.0.len(), 3);
        assert_eq!(
            voters.0[&3],
            PeerAddress {
                host: "::1".to_string(),
                port: 9194
            }
        );
        assert_eq!(voters.to_string(), text);
        let spaced: Voters = " 2@localhost:1 , 1@localhost:2".parse().unwrap();
        assert_eq!(spaced.to_string(), "1@localhost:2,2@localhost:1");
    }

    #[test]
    fn bad_entries_are_named() {
        assert!(error("").contains("an empty entry"));
        assert!(error("1@127.0.0.1:9192,").contains("an empty entry"));
        assert!(error("127.0.0.1:9192").contains("has no '@'"));
        assert!(error("x@127.0.0.1:9192").contains("`x` in `x@127.0.0.1:9192` is not a node id"));
        assert!(error("-1@127.0.0.1:9192").contains("not a node id"));
        assert!(error("1@127.0.0.1").contains("has no port"));
        assert!(error("1@127.0.0.1:0").contains("is not a port"));
        assert!(error("1@127.0.0.1:70000").contains("is not a port"));
        assert!(error("1@:9192").contains("is not a host"));
        assert!(error("1@a:1,1@b:2").contains("node id 1 appears twice"));
        assert!(error("1@a:1,2@a:1").contains("nodes 1 and 2 both have the address a:1"));
        let many: Vec<String> = (0..65).map(|i| format!("{i}@h:{}", i + 1)).collect();
        assert!(error(&many.join(",")).contains("more than 64 voters"));
    }
}
