//! `--push-allow`: the URLs a push group may name (the guard against server-side request
//! forgery). A pattern is `scheme://host[:port][/path]`; `*` matches any run of characters in
//! the host, the port and the path. Without a port a pattern allows the scheme's default port
//! only; without a path, any path. URLs are compared by their parsed parts, never as strings,
//! so `http://127.0.0.1:80@evil.example/` (user info) cannot pass for a loopback address: URLs
//! with user info are refused outright.

use url::Url;

/// What is wrong with a push URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("push url {url:?} is not a URL: {reason}")]
    Malformed { url: String, reason: String },
    #[error("push url {0:?} must be http or https, without user info")]
    Unsupported(String),
    #[error("push url {0:?} matches no --push-allow pattern of this gateway")]
    NotAllowed(String),
}

/// A bad `--push-allow` pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad --push-allow pattern {pattern:?}: {reason}")]
pub struct BadPattern {
    pattern: String,
    reason: &'static str,
}

#[derive(Debug, Clone)]
struct Pattern {
    scheme: String,
    host: String,
    /// `None`: the scheme's default port.
    port: Option<String>,
    /// `None`: any path.
    path: Option<String>,
}

/// The patterns of `--push-allow`.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    patterns: Vec<Pattern>,
}

impl AllowList {
    /// The default on a local directory: loopback HTTP on any port. Elsewhere: nothing.
    pub fn defaults(local: bool) -> Vec<String> {
        if local {
            vec!["http://127.0.0.1:*".into(), "http://localhost:*".into()]
        } else {
            Vec::new()
        }
    }

    /// Parses `patterns` (each may hold several, comma-separated).
    pub fn parse<S: AsRef<str>>(patterns: &[S]) -> Result<Self, BadPattern> {
        let mut out = Vec::new();
        for p in patterns
            .iter()
            .flat_map(|p| p.as_ref().split(','))
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            out.push(Pattern::parse(p)?);
        }
        Ok(AllowList { patterns: out })
    }

    /// No pattern: every push URL is refused.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// `url` parsed, if it is an http(s) URL without user info that a pattern allows.
    pub fn check(&self, url: &str) -> Result<Url, Refused> {
        let parsed = Url::parse(url).map_err(|e| Refused::Malformed {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        let scheme = parsed.scheme();
        if !matches!(scheme, "http" | "https")
            || !parsed.username().is_empty()
            || parsed.password().is_some()
        {
            return Err(Refused::Unsupported(url.to_string()));
        }
        let (Some(host), Some(port)) = (parsed.host_str(), parsed.port_or_known_default()) else {
            return Err(Refused::Unsupported(url.to_string()));
        };
        let host = host.to_ascii_lowercase();
        let port = port.to_string();
        let allowed = self.patterns.iter().any(|p| {
            p.scheme == scheme
                && glob(&p.host, &host)
                && match &p.port {
                    Some(pp) => glob(pp, &port),
                    None => parsed.port().is_none(),
                }
                && p.path.as_deref().is_none_or(|pp| glob(pp, parsed.path()))
        });
        if allowed {
            Ok(parsed)
        } else {
            Err(Refused::NotAllowed(url.to_string()))
        }
    }
}

impl Pattern {
    fn parse(p: &str) -> Result<Self, BadPattern> {
        let bad = |reason| BadPattern {
            pattern: p.to_string(),
            reason,
        };
        let (scheme, rest) = p
            .split_once("://")
            .ok_or_else(|| bad("expected scheme://host[:port][/path]"))?;
        let scheme = scheme.to_ascii_lowercase();
        if !matches!(scheme.as_str(), "http" | "https") {
            return Err(bad("the scheme must be http or https"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(rest[i..].to_string())),
            None => (rest, None),
        };
        if authority.contains('@') {
            return Err(bad("user info is not allowed"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("unclosed [ in host"))?;
            let port = match after.strip_prefix(':') {
                Some(port) => Some(port),
                None if after.is_empty() => None,
                None => return Err(bad("expected :port after ]")),
            };
            (format!("[{h}]"), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, port)) => (h.to_string(), Some(port)),
                None => (authority.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        if let Some(port) = port {
            if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit() || b == b'*') {
                return Err(bad("the port must be digits or *"));
            }
        }
        Ok(Pattern {
            scheme,
            host: host.to_ascii_lowercase(),
            port: port.map(str::to_string),
            path,
        })
    }
}

/// Whether `text` matches `pattern`, whose `*` matches any run of characters (also none).
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(p: &[&str]) -> AllowList {
        AllowList::parse(p).expect("patterns")
    }

    #[test]
    fn the_local_default_allows_loopback_http_on_any_port_and_nothing_else() {
        let l = list(
            &AllowList::defaults(true)
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        );
        for ok in [
            "http://127.0.0.1:8080/hook",
            "http://localhost:9/",
            "http://LOCALHOST:1/a?b=c",
            "http://127.0.0.1/",
        ] {
            assert!(l.check(ok).is_ok(), "{ok}");
        }
        for refused in [
            "http://127.0.0.1:80@evil.example/",
            "http://user@127.0.0.1:8080/",
            "https://127.0.0.1:8443/",
            "http://127.0.0.2:8080/",
            "http://localhost.evil.example:8080/",
            "http://169.254.169.254/latest/meta-data",
            "file:///etc/passwd",
            "gopher://127.0.0.1:70/",
            "not a url",
        ] {
            assert!(l.check(refused).is_err(), "{refused}");
        }
        assert!(
            list(
                &AllowList::defaults(false)
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
            )
            .check("http://127.0.0.1:8080/")
            .is_err()
        );
    }

    #[test]
    fn hosts_ports_and_paths_match_by_part() {
        let l = list(&[
            "https://*.internal/hooks/*",
            "http://[::1]:8000",
            "http://10.0.0.5:80*",
        ]);
        assert!(l.check("https://billing.internal/hooks/orders").is_ok());
        assert!(l.check("https://billing.internal:443/hooks/x").is_ok());
        assert!(
            l.check("https://billing.internal:8443/hooks/x").is_err(),
            "not the default port"
        );
        assert!(l.check("https://billing.internal/other").is_err());
        assert!(l.check("https://internal.evil.example/hooks/a").is_err());
        assert!(l.check("http://[::1]:8000/anything").is_ok());
        assert!(l.check("http://[::1]:8001/").is_err());
        assert!(l.check("http://10.0.0.5:8080/").is_ok());
        assert!(l.check("http://10.0.0.5/").is_ok(), "80 matches 80*");
        assert!(l.check("http://10.0.0.5:9000/").is_err());
    }

    #[test]
    fn bad_patterns_are_refused() {
        for p in [
            "127.0.0.1:*",
            "ftp://x",
            "http://a@b",
            "http://:80",
            "http://[::1",
            "http://h:8x",
        ] {
            assert!(AllowList::parse(&[p]).is_err(), "{p}");
        }
        assert!(AllowList::parse(&["", " , "]).expect("empty").is_empty());
    }

    #[test]
    fn glob_matches_runs() {
        assert!(glob("*", ""));
        assert!(glob("a*c", "abbbc"));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*c", "abbbd"));
        assert!(!glob("abc", "abcd"));
    }
}
