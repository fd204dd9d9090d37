//! Image references, normalized as Docker does: `busybox` is `docker.io/library/busybox:latest`.

use super::ImageError;

pub(crate) const DEFAULT_DOMAIN: &str = "docker.io";

/// A parsed reference: `domain/path[:tag][@digest]`, with the tag `latest` when neither a tag
/// nor a digest was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reference {
    pub domain: String,
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Reference {
    pub fn parse(reference: &str) -> Result<Reference, ImageError> {
        let bad = |reason: &str| ImageError::InvalidReference {
            reference: reference.to_string(),
            reason: reason.to_string(),
        };
        if reference.is_empty() || reference.len() > 4096 {
            return Err(bad("empty or longer than 4096 bytes"));
        }
        let (rest, digest) = match reference.split_once('@') {
            Some((rest, digest)) => {
                super::digest::Digest::parse(digest).map_err(|_| bad("the digest is not sha256:<64 hex digits>"))?;
                (rest, Some(digest.to_string()))
            }
            None => (reference, None),
        };
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag {
            let ok = !tag.is_empty()
                && tag.len() <= 128
                && !tag.starts_with(['.', '-'])
                && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
            if !ok {
                return Err(bad("the tag must be 1-128 of [A-Za-z0-9_.-], not starting with . or -"));
            }
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains(['.', ':']) || first == "localhost" || first != first.to_lowercase() =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
        };
        let domain = if domain == "index.docker.io" {
            DEFAULT_DOMAIN.to_string()
        } else {
            domain
        };
        if domain.is_empty()
            || !domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        {
            return Err(bad("invalid registry host"));
        }
        let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && c.starts_with(|ch: char| ch.is_ascii_alphanumeric())
                && c.ends_with(|ch: char| ch.is_ascii_alphanumeric())
        };
        if !path.split('/').all(component_ok) {
            return Err(bad(
                "repository components must be lowercase [a-z0-9] separated by . _ - and /",
            ));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some("latest".to_string()),
        };
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// `domain/path`, the repository's full name.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The host to connect to for a pull.
    pub fn registry_host(&self) -> &str {
        if self.domain == DEFAULT_DOMAIN {
            "registry-1.docker.io"
        } else {
            &self.domain
        }
    }

    /// What the registry is asked for: the digest when there is one, else the tag.
    pub fn manifest_ref(&self) -> &str {
        self.digest.as_deref().or(self.tag.as_deref()).unwrap_or("latest")
    }

    /// The name an image is stored under (`domain/path:tag`), or None for a digest-only reference.
    pub fn tagged_name(&self) -> Option<String> {
        self.tag.as_ref().map(|t| format!("{}:{t}", self.repository()))
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.repository())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// The normalized form of a reference (`busybox` → `docker.io/library/busybox:latest`).
pub fn normalize(reference: &str) -> Result<String, ImageError> {
    Reference::parse(reference).map(|r| r.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_docker() {
        let n = |s: &str| normalize(s).unwrap_or_else(|e| format!("ERR {e}"));
        assert_eq!(n("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(n("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(n("user/app"), "docker.io/user/app:latest");
        assert_eq!(n("index.docker.io/library/busybox"), "docker.io/library/busybox:latest");
        assert_eq!(n("127.0.0.1:5000/test/bb:v1"), "127.0.0.1:5000/test/bb:v1");
        assert_eq!(n("localhost/bb"), "localhost/bb:latest");
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(n(&format!("bb@{d}")), format!("docker.io/library/bb@{d}"));
        assert!(n("Busybox").starts_with("ERR"));
        assert!(n("bb:").starts_with("ERR"));
        assert!(n("bb@sha256:12").starts_with("ERR"));
        assert!(n("").starts_with("ERR"));
    }
}
