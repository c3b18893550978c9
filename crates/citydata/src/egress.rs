//! Where the broker may connect on a caller's word: `@context` URLs,
//! notification endpoints. Anyone may name them in the open tenant, so by
//! default only public addresses are reached; loopback and private
//! networks (the demo's helpers, the ETSI suite's) only when the
//! configuration allows it (`city_egress_private`).
//!
//! The name is resolved and every address checked before connecting; a
//! resolver that answers differently the next moment (DNS rebinding) is
//! not defended against here.

use std::net::IpAddr;

/// Is this an address of this machine or of a private network?
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64/10, carrier-grade NAT
                || o[0] == 0
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link local
        }
    }
}

/// Checks that `host:port` may be reached; why not, if it may not.
pub async fn check(host: &str, port: u16, allow_private: bool) -> Result<(), String> {
    if allow_private {
        return Ok(());
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<IpAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => tokio::net::lookup_host((bare, port))
            .await
            .map_err(|_| format!("{host} does not resolve"))?
            .map(|a| a.ip())
            .collect(),
    };
    if addrs.is_empty() {
        return Err(format!("{host} does not resolve"));
    }
    if addrs.into_iter().any(is_private) {
        return Err(format!(
            "{host} is on this machine or a private network, which this broker does not reach (city_egress_private)"
        ));
    }
    Ok(())
}

/// The host and port of an http(s) or mqtt URL.
pub fn host_port(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let default = match scheme {
        "http" => 80,
        "https" => 443,
        "mqtt" => 1883,
        "mqtts" => 8883,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = after
            .strip_prefix(':')
            .map(|p| p.parse().ok())
            .unwrap_or(Some(default))?;
        return Some((format!("[{host}]"), port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => Some((h.to_owned(), p.parse().ok()?)),
        None => Some((authority.to_owned(), default)),
    }
    .filter(|(h, _)| !h.is_empty())
}

/// Checks a URL's host (see `check`).
pub async fn check_url(url: &str, allow_private: bool) -> Result<(), String> {
    if allow_private {
        return Ok(());
    }
    let (host, port) =
        host_port(url).ok_or_else(|| format!("{url} is not an http(s) or mqtt URL"))?;
    check(&host, port, false).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn private_and_local_addresses_are_refused_unless_allowed() {
        for url in [
            "http://127.0.0.1:18088/x.jsonld",
            "http://10.1.2.3/x",
            "http://192.168.0.1/x",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]:8080/x",
            "mqtt://localhost:1883/alerts",
            "http://100.64.0.1/x",
        ] {
            assert!(check_url(url, false).await.is_err(), "{url}");
            assert!(check_url(url, true).await.is_ok(), "{url}");
        }
        assert!(check("93.184.216.34", 80, false).await.is_ok());
        assert_eq!(
            host_port("mqtt://user:pw@broker.example:1884/t"),
            Some(("broker.example".into(), 1884))
        );
        assert_eq!(
            host_port("https://example.org/ctx"),
            Some(("example.org".into(), 443))
        );
    }
}
