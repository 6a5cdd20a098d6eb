//! Outbound HTTP allow-list: `scheme://host[:port]` patterns, and which
//! resolved addresses a pattern lets a connection reach.
//!
//! Pure: no name resolution here. The enforcement side (`interfaces::http`)
//! resolves the requested host once, asks [`OriginPattern::allows_address`]
//! about every address, and connects to one of exactly those addresses.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The host part of a pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// Exactly this DNS name (lowercase, no trailing dot).
    Name(String),
    /// Any name with one or more labels in front of this domain
    /// (`*.example.com` matches `a.example.com` and `a.b.example.com`, never
    /// `example.com` itself).
    Subdomains(String),
    /// Exactly this IP address (written literally, IPv6 in brackets).
    Ip(IpAddr),
}

/// One allow-list entry: `scheme://host[:port]`. Without a port it means the
/// scheme's default port (80, 443), never "any port".
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OriginPattern {
    /// `http` or `https`.
    pub scheme: String,
    /// The host.
    pub host: HostPattern,
    /// The port (the scheme's default when the pattern has none).
    pub port: u16,
}

/// A request's target, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `http` or `https`.
    pub scheme: String,
    /// Lowercase host without brackets or trailing dot.
    pub host: String,
    /// Explicit or default port.
    pub port: u16,
}

impl Origin {
    /// Builds an origin from a request's scheme and authority (`host[:port]`,
    /// IPv6 in brackets). Userinfo (`user@host`) is refused.
    pub fn from_parts(scheme: &str, authority: &str) -> Result<Origin, String> {
        let scheme = scheme.to_ascii_lowercase();
        let default_port = default_port(&scheme)
            .ok_or_else(|| format!("scheme `{scheme}` is not http or https"))?;
        if authority.contains('@') {
            return Err(format!(
                "`{authority}`: credentials in the authority are refused"
            ));
        }
        let (host, port) = split_host_port(authority)?;
        Ok(Origin {
            scheme,
            host: normalise_host(host),
            port: port.unwrap_or(default_port),
        })
    }

    /// The host as an IP address, when it is a literal.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.scheme, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
        }
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

fn normalise_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// Splits `host[:port]` / `[v6][:port]`.
fn split_host_port(authority: &str) -> Result<(&str, Option<u16>), String> {
    let bad_port = |p: &str| format!("`{authority}`: `{p}` is not a port");
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("`{authority}`: unclosed `[`"))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| bad_port(p))?,
            ),
        };
        return Ok((host, port));
    }
    match authority.rsplit_once(':') {
        Some((host, p)) => Ok((host, Some(p.parse().map_err(|_| bad_port(p))?))),
        None => Ok((authority, None)),
    }
}

impl OriginPattern {
    /// Parses `scheme://host[:port]`; `host` may be `*.domain`. Paths,
    /// queries, credentials and bare `*` are refused.
    pub fn parse(text: &str) -> Result<OriginPattern, String> {
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| format!("`{text}` must look like `https://host[:port]`"))?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = default_port(&scheme)
            .ok_or_else(|| format!("`{text}`: scheme must be http or https"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err(format!(
                "`{text}`: an allow-list entry is an origin only (no path, query or credentials)"
            ));
        }
        let (host, port) = split_host_port(rest).map_err(|e| format!("`{text}`: {e}"))?;
        let port = port.unwrap_or(default_port);
        let host = normalise_host(host);
        let valid_name = |h: &str| {
            !h.is_empty()
                && h.split('.').all(|label| {
                    !label.is_empty()
                        && label
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                })
        };
        let host = if let Some(domain) = host.strip_prefix("*.") {
            if !valid_name(domain) || domain.parse::<IpAddr>().is_ok() {
                return Err(format!("`{text}`: `*.` must be followed by a domain name"));
            }
            HostPattern::Subdomains(domain.to_string())
        } else if let Ok(ip) = host.parse::<IpAddr>() {
            HostPattern::Ip(ip)
        } else if valid_name(&host) {
            HostPattern::Name(host)
        } else {
            return Err(format!(
                "`{text}`: host must be a DNS name, `*.domain` or an IP address (IPv6 in brackets)"
            ));
        };
        Ok(OriginPattern { scheme, host, port })
    }

    /// Whether a request to `origin` matches this pattern (scheme, host and
    /// port all equal; wildcards only as `*.domain`).
    pub fn matches(&self, origin: &Origin) -> bool {
        if self.scheme != origin.scheme || self.port != origin.port {
            return false;
        }
        match &self.host {
            HostPattern::Name(n) => *n == origin.host,
            HostPattern::Subdomains(d) => origin
                .host
                .strip_suffix(d.as_str())
                .is_some_and(|front| front.len() > 1 && front.ends_with('.')),
            HostPattern::Ip(ip) => origin.ip() == Some(*ip),
        }
    }

    /// Whether a connection for a request matching this pattern may go to
    /// `addr` (an address the requested host resolved to).
    ///
    /// Public addresses are always fine. Loopback, private, link-local,
    /// unspecified, multicast and other special-purpose addresses are only
    /// reachable when the pattern names them on purpose: an IP-literal
    /// pattern naming exactly `addr`, or the name `localhost` resolving to a
    /// loopback address. A pattern for a public name never reaches an
    /// internal address, whatever DNS answers (no rebinding into the host's
    /// network).
    pub fn allows_address(&self, addr: IpAddr) -> bool {
        if !is_special(addr) {
            return true;
        }
        match &self.host {
            HostPattern::Ip(ip) => canonical(*ip) == canonical(addr),
            HostPattern::Name(n) if n == "localhost" => canonical(addr).is_loopback(),
            _ => false,
        }
    }
}

impl fmt::Display for OriginPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = match &self.host {
            HostPattern::Name(n) => n.clone(),
            HostPattern::Subdomains(d) => format!("*.{d}"),
            HostPattern::Ip(IpAddr::V6(ip)) => format!("[{ip}]"),
            HostPattern::Ip(ip) => ip.to_string(),
        };
        write!(f, "{}://{host}:{}", self.scheme, self.port)
    }
}

impl Serialize for OriginPattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for OriginPattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let t = String::deserialize(d)?;
        OriginPattern::parse(&t).map_err(serde::de::Error::custom)
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:127.0.0.1`) are judged as the IPv4
/// address they carry, so they cannot smuggle a loopback address past the check.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Whether `addr` is anything but a globally routable unicast address:
/// loopback, private (RFC 1918, unique-local), link-local, unspecified,
/// multicast, broadcast, shared (CGNAT), documentation, benchmarking,
/// reserved, NAT64/6to4/Teredo carriers of such addresses.
pub fn is_special(addr: IpAddr) -> bool {
    match canonical(addr) {
        IpAddr::V4(v4) => is_special_v4(v4),
        IpAddr::V6(v6) => is_special_v6(v6),
    }
}

fn is_special_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240 // reserved
}

fn is_special_v6(ip: Ipv6Addr) -> bool {
    let seg = ip.segments();
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (seg[0] & 0xfe00) == 0xfc00 // unique local
        || (seg[0] & 0xffc0) == 0xfe80 // link local
        || (seg[0] & 0xffc0) == 0xfec0 // site local (deprecated)
        || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
        || (seg[0] == 0x2001 && seg[1] == 0) // Teredo: embeds an IPv4 address
        || seg[0] == 0x2002 // 6to4: embeds an IPv4 address
        || (seg[0] == 0x0064 && seg[1] == 0xff9b) // NAT64: embeds an IPv4 address
        || seg[..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible (deprecated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> OriginPattern {
        OriginPattern::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn o(scheme: &str, authority: &str) -> Origin {
        Origin::from_parts(scheme, authority).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn patterns_match_scheme_host_and_port_exactly() {
        let table: &[(&str, &str, &str, bool)] = &[
            (
                "https://rates.example.com",
                "https",
                "rates.example.com",
                true,
            ),
            (
                "https://rates.example.com",
                "https",
                "rates.example.com:443",
                true,
            ),
            (
                "https://rates.example.com",
                "https",
                "RATES.example.com.",
                true,
            ),
            (
                "https://rates.example.com",
                "http",
                "rates.example.com",
                false,
            ),
            (
                "https://rates.example.com",
                "https",
                "rates.example.com:8443",
                false,
            ),
            (
                "https://rates.example.com",
                "https",
                "evil-rates.example.com",
                false,
            ),
            (
                "https://rates.example.com",
                "https",
                "rates.example.com.evil.io",
                false,
            ),
            ("https://rates.example.com", "https", "example.com", false),
            ("https://*.example.com", "https", "a.example.com", true),
            ("https://*.example.com", "https", "a.b.example.com", true),
            ("https://*.example.com", "https", "example.com", false),
            ("https://*.example.com", "https", "badexample.com", false),
            ("https://*.example.com", "https", "a.example.com:444", false),
            ("http://127.0.0.1:8080", "http", "127.0.0.1:8080", true),
            ("http://127.0.0.1:8080", "http", "127.0.0.1", false),
            ("http://127.0.0.1:8080", "http", "localhost:8080", false),
            ("http://[::1]:9000", "http", "[::1]:9000", true),
            ("http://localhost:9000", "http", "localhost:9000", true),
        ];
        for (pattern, scheme, authority, expected) in table {
            assert_eq!(
                p(pattern).matches(&o(scheme, authority)),
                *expected,
                "{pattern} vs {scheme}://{authority}"
            );
        }
    }

    #[test]
    fn malformed_patterns_are_refused() {
        for bad in [
            "rates.example.com",
            "ftp://rates.example.com",
            "https://rates.example.com/path",
            "https://user@rates.example.com",
            "https://*",
            "https://*.1.2.3.4",
            "https://exa mple.com",
            "https://example.com:99999",
            "https://[::1",
            "https://",
        ] {
            assert!(OriginPattern::parse(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn authorities_with_credentials_are_refused() {
        assert!(Origin::from_parts("https", "user:pw@example.com").is_err());
        assert!(Origin::from_parts("gopher", "example.com").is_err());
    }

    #[test]
    fn special_ranges_are_classified() {
        let special = [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "100.64.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
            "2001:db8::1",
        ];
        for ip in special {
            assert!(is_special(ip.parse().expect("ip")), "{ip} is special");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "172.32.0.1", "2606:4700::1111"] {
            assert!(!is_special(ip.parse().expect("ip")), "{ip} is public");
        }
    }

    #[test]
    fn internal_addresses_need_a_pattern_that_names_them() {
        let loopback: IpAddr = "127.0.0.1".parse().expect("ip");
        let private: IpAddr = "10.0.0.5".parse().expect("ip");
        let public: IpAddr = "93.184.216.34".parse().expect("ip");
        assert!(p("https://rates.example.com").allows_address(public));
        assert!(!p("https://rates.example.com").allows_address(loopback));
        assert!(!p("https://*.example.com").allows_address(private));
        assert!(p("http://127.0.0.1:8080").allows_address(loopback));
        assert!(!p("http://127.0.0.1:8080").allows_address("127.0.0.2".parse().expect("ip")));
        assert!(p("http://127.0.0.1:8080").allows_address("::ffff:127.0.0.1".parse().expect("ip")));
        assert!(p("http://localhost:8080").allows_address(loopback));
        assert!(!p("http://localhost:8080").allows_address(private));
        assert!(p("http://10.0.0.5").allows_address(private));
    }
}
