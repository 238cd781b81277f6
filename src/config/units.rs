//! Parsers for the small value languages inside `devenv.toml`: sizes, durations, port
//! forwards, image and Kubernetes names. Pure functions; the error strings are shown to users.

use std::time::Duration;

/// The largest size accepted: 1 TiB.
pub const MAX_MEGABYTES: u64 = 1024 * 1024;
/// The longest duration accepted: a day.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// Parses a size the way `minikube start --memory` does: a plain number is megabytes, units
/// are binary (`8g` = 8192 MB) and may be written `g`, `gb`, `gi`, `gib`, in any case.
pub fn parse_megabytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || {
        format!(
            "invalid size \"{text}\": expected a number with an optional unit (b, k, m, g, t, or Kubernetes' Ki, Mi, Gi, Ti), like \"8g\", \"8Gi\" or \"8192mb\""
        )
    };
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') || num.matches('.').count() > 1
    {
        return Err(bad());
    }
    let value: f64 = num.parse().map_err(|_| bad())?;
    let unit = unit.trim_start().to_ascii_lowercase();
    let letter_len = usize::from(unit.starts_with(['k', 'm', 'g', 't']));
    let (letter, suffix) = unit.split_at(letter_len);
    // A plain number is megabytes and a lone "b" bytes; "g", "gb" and "gib" all mean GiB, as in
    // minikube, and so does Kubernetes' "Gi".
    let bytes_per_unit: f64 = match (letter, suffix) {
        ("", "") => 1024.0 * 1024.0,
        ("", "b") => 1.0,
        ("k", "" | "b" | "i" | "ib") => 1024.0,
        ("m", "" | "b" | "i" | "ib") => 1024.0 * 1024.0,
        ("g", "" | "b" | "i" | "ib") => 1024.0 * 1024.0 * 1024.0,
        ("t", "" | "b" | "i" | "ib") => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    let mb = (value * bytes_per_unit / (1024.0 * 1024.0)).floor();
    if mb < 1.0 {
        return Err(format!("size \"{text}\" is smaller than 1 MB"));
    }
    if mb > MAX_MEGABYTES as f64 {
        return Err(format!(
            "size \"{text}\" is larger than 1 TiB, more than any machine devenv sizes"
        ));
    }
    Ok(mb as u64)
}

/// Parses `"50ms"`, `"2s"`, `"5m"`, `"1h"` and sums like `"1m30s"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "invalid duration \"{text}\": expected a number and a unit (ms, s, m, h), like \"50ms\" or \"2m\""
        )
    };
    let t = text.trim();
    if t.is_empty() {
        return Err(bad());
    }
    let mut rest = t;
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let too_long = || format!("duration \"{text}\" is longer than 24h");
        let part = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(too_long)?),
            "h" => Duration::from_secs(n.checked_mul(3600).ok_or_else(too_long)?),
            _ => return Err(bad()),
        };
        total = total.saturating_add(part);
        if total > MAX_DURATION {
            return Err(too_long());
        }
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// Formats a duration back in the shortest unit that shows it exactly.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        "0s".to_owned()
    } else if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// A port forward from 127.0.0.1:local to the workload's remote port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PortForward {
    pub local: u16,
    pub remote: u16,
}

/// Parses `"8000:8000"` (local:remote) or `"8000"` (the same port on both sides).
pub fn parse_port_forward(text: &str) -> Result<PortForward, String> {
    let bad = |why: &str| format!("invalid port forward \"{text}\": {why}");
    let parts: Vec<&str> = text.split(':').collect();
    let port = |s: &str| -> Result<u16, String> {
        let s = s.trim();
        if s.is_empty() || !s.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad(&format!("\"{s}\" is not a port number")));
        }
        match s.parse::<u32>() {
            Ok(p) if (1..=65535).contains(&p) => Ok(p as u16),
            _ => Err(bad(&format!("port {s} is outside 1-65535"))),
        }
    };
    match parts.as_slice() {
        [one] => {
            let p = port(one)?;
            Ok(PortForward {
                local: p,
                remote: p,
            })
        }
        [local, remote] => Ok(PortForward {
            local: port(local)?,
            remote: port(remote)?,
        }),
        _ => Err(bad("expected LOCAL:REMOTE, like \"8000:8000\"")),
    }
}

/// Checks an image repository name against Docker's reference grammar (lowercase path
/// components separated by `/`, an optional registry host with port). Tags and digests are
/// refused: devenv tags every image by its content.
pub fn check_image_name(name: &str) -> Result<(), String> {
    if name.contains('@') {
        return Err(format!(
            "image name \"{name}\" has a digest; give the repository only"
        ));
    }
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') {
        return Err(format!(
            "image name \"{name}\" has a tag; give the repository only, devenv tags images by content"
        ));
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    // A first component with a dot, a colon or "localhost" is a registry host.
    if parts.len() > 1
        && (parts[0].contains('.') || parts[0].contains(':') || parts[0] == "localhost")
    {
        parts.remove(0);
    }
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
            && c.starts_with(|ch: char| ch.is_ascii_alphanumeric())
            && c.ends_with(|ch: char| ch.is_ascii_alphanumeric())
    };
    if parts.iter().all(|c| component_ok(c)) {
        Ok(())
    } else {
        Err(format!(
            "invalid image name \"{name}\": use lowercase letters, digits and . _ - (like \"todo-backend\")"
        ))
    }
}

/// Kubernetes object names used by devenv (namespaces, releases, secrets): RFC 1123 labels.
pub fn check_dns_label(kind: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid {kind} \"{name}\": use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit"
        ))
    }
}

/// Kubernetes Secret names may also contain dots (RFC 1123 subdomain).
pub fn check_dns_subdomain(kind: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| check_dns_label(kind, l).is_ok());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid {kind} \"{name}\": use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
        ))
    }
}

/// Whether a registry (`host[:port][/path]`) is on this machine: 127.0.0.0/8, `localhost`,
/// `::1`. Such registries speak plain HTTP by convention, as Docker treats them.
pub fn is_loopback_registry(registry: &str) -> bool {
    let host_port = registry.split('/').next().unwrap_or(registry);
    let host = if let Some(rest) = host_port.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        host_port.rsplit_once(':').map_or(host_port, |(h, _)| h)
    };
    host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A key of a Kubernetes Secret: letters, digits, `-`, `_` and `.`, at most 253 characters.
pub fn check_secret_key(key: &str) -> Result<(), String> {
    let ok = !key.is_empty()
        && key.len() <= 253
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid Secret key \"{key}\": use letters, digits, '-', '_' and '.'"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_minikube_units() {
        for (text, mb) in [
            ("8192", 8192),
            ("8g", 8192),
            ("8G", 8192),
            ("8gb", 8192),
            ("8GiB", 8192),
            ("8192mb", 8192),
            ("8192m", 8192),
            ("8192MiB", 8192),
            ("1.5g", 1536),
            ("20 GB", 20480),
            ("1t", 1_048_576),
            ("2097152k", 2048),
            // Kubernetes' binary units (issue 15, point 6).
            ("8Gi", 8192),
            ("4096Mi", 4096),
            ("1Ti", 1_048_576),
            ("2097152Ki", 2048),
        ] {
            assert_eq!(parse_megabytes(text), Ok(mb), "{text}");
        }
        for bad in [
            "", "g", "8x", "8gg", "8.g", "..8", "8 mega", "-1g", "8bi", "1.2.3g",
        ] {
            assert!(parse_megabytes(bad).is_err(), "{bad} should be refused");
        }
        assert_eq!(
            parse_megabytes("512b"),
            Err("size \"512b\" is smaller than 1 MB".to_owned())
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("50ms"), Ok(Duration::from_millis(50)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["", "50", "s", "5 s", "5sec", "1.5s", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad} should be refused");
        }
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_duration(Duration::from_secs(300)), "5m");
        assert_eq!(format_duration(Duration::from_millis(50)), "50ms");
    }

    #[test]
    fn port_forwards() {
        assert_eq!(
            parse_port_forward("8000:80"),
            Ok(PortForward {
                local: 8000,
                remote: 80
            })
        );
        assert_eq!(
            parse_port_forward("3000"),
            Ok(PortForward {
                local: 3000,
                remote: 3000
            })
        );
        assert!(parse_port_forward("0:80").is_err());
        assert!(parse_port_forward("70000:80").is_err());
        assert!(parse_port_forward("a:80").is_err());
        assert!(parse_port_forward("1:2:3").is_err());
        assert!(parse_port_forward("").is_err());
    }

    #[test]
    fn image_names() {
        for ok in [
            "todo-backend",
            "library/redis",
            "ghcr.io/acme/api",
            "localhost:5000/app",
            "a.b_c",
        ] {
            assert_eq!(check_image_name(ok), Ok(()), "{ok}");
        }
        for bad in ["Todo", "app:1.0", "app@sha256:abc", "-app", "a//b", ""] {
            assert!(check_image_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dns_names() {
        assert!(check_dns_label("namespace", "todo-dev").is_ok());
        assert!(check_dns_label("namespace", "Todo").is_err());
        assert!(check_dns_label("namespace", "todo-").is_err());
        assert!(check_dns_subdomain("secret", "todo.secrets").is_ok());
        assert!(check_dns_subdomain("secret", "todo..secrets").is_err());
    }
}
