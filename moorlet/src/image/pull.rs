//! Pulls from a registry (the distribution API v2) with a synchronous client: HTTP for
//! 127.0.0.1 and localhost, HTTPS otherwise; anonymous, or a Bearer token fetched from the realm
//! a 401's WWW-Authenticate names. An index resolves to its linux/amd64 manifest; every manifest
//! and blob is verified against its digest (and size) while it streams into staging, so a
//! registry serving wrong content stores nothing.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Read;
use std::time::Duration;

use super::digest::Digest;
use super::oci::{self, Blobs, Descriptor, ACCEPT, MAX_DOCUMENT};
use super::reference::Reference;
use super::staging::Staging;
use super::store::ImageStore;
use super::{Image, ImageError};

pub(crate) fn pull(store: &ImageStore, reference: &str) -> Result<Image, ImageError> {
    let r = Reference::parse(reference)?;
    let registry = Registry::new(&r);
    let mut staging = Staging::new(store)?;
    let Fetched {
        bytes,
        media_type,
        header_digest,
    } = registry.manifest(r.manifest_ref())?;
    let digest = Digest::of(&bytes);
    let what = format!("manifest {r}");
    let expected = match (&r.digest, header_digest) {
        (Some(d), _) => Some(Digest::parse(d)?),
        // by tag, the registry's Docker-Content-Digest (when it sends one) must be what came
        (None, Some(h)) => Some(Digest::parse(&h)?),
        (None, None) => None,
    };
    if let Some(e) = expected.filter(|e| *e != digest) {
        return Err(ImageError::DigestMismatch {
            what,
            expected: e.to_string(),
            actual: digest.to_string(),
        });
    }
    let size = bytes.len() as u64;
    staging.put_blob(&what, &bytes[..], Some(&digest), Some(size))?;
    let top = Descriptor {
        media_type,
        digest: digest.to_string(),
        size,
        annotations: HashMap::new(),
        platform: None,
    };
    let image = oci::fetch(&registry, &mut staging, &top, r.tagged_name().into_iter().collect(), 0)?;
    staging
        .commit(vec![image])?
        .pop()
        .ok_or_else(|| ImageError::NotFound(reference.to_string()))
}

struct Registry {
    agent: ureq::Agent,
    /// `http://127.0.0.1:5000/v2/<repository>`
    base: String,
    repository: String,
    token: RefCell<Option<String>>,
}

fn is_local(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    matches!(name, "127.0.0.1" | "localhost" | "::1")
}

impl Registry {
    fn new(r: &Reference) -> Registry {
        let host = r.registry_host();
        let scheme = if is_local(host) { "http" } else { "https" };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .user_agent(concat!("moorlet/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Registry {
            agent,
            base: format!("{scheme}://{host}/v2/{}", r.path),
            repository: r.path.clone(),
            token: RefCell::new(None),
        }
    }

    /// A GET with the token, fetching one first when the registry answers 401 with a Bearer
    /// challenge. Returns a 2xx response or an error naming the URL and status.
    fn get(&self, url: &str, accept: &str) -> Result<ureq::http::Response<ureq::Body>, ImageError> {
        let mut authed = false;
        loop {
            let mut req = self.agent.get(url).header("Accept", accept);
            if let Some(t) = self.token.borrow().as_ref() {
                req = req.header("Authorization", format!("Bearer {t}"));
            }
            let resp = req.call().map_err(|e| http_err(url, e))?;
            let status = resp.status().as_u16();
            if status == 401 && !authed {
                let challenge = resp
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                *self.token.borrow_mut() = Some(self.fetch_token(url, &challenge)?);
                authed = true;
                continue;
            }
            if status == 401 {
                return Err(ImageError::Registry {
                    url: url.to_string(),
                    reason: "HTTP 401 even with the token its realm gave (only anonymous pulls are supported)"
                        .to_string(),
                });
            }
            if !(200..300).contains(&status) {
                let mut body = String::new();
                let _ = resp.into_body().into_reader().take(512).read_to_string(&mut body);
                return Err(ImageError::Registry {
                    url: url.to_string(),
                    reason: format!("HTTP {status}: {}", body.trim()),
                });
            }
            return Ok(resp);
        }
    }

    fn fetch_token(&self, url: &str, challenge: &str) -> Result<String, ImageError> {
        let fail = |reason: String| ImageError::Registry {
            url: url.to_string(),
            reason,
        };
        let Some(params) = challenge
            .strip_prefix("Bearer ")
            .or_else(|| challenge.strip_prefix("bearer "))
        else {
            return Err(fail(format!(
                "HTTP 401 with the challenge {challenge:?}: only anonymous Bearer tokens are supported"
            )));
        };
        let params = parse_challenge(params);
        let realm = params
            .get("realm")
            .ok_or_else(|| fail("the Bearer challenge has no realm".to_string()))?;
        if !realm.starts_with("https://") && !realm.starts_with("http://") {
            return Err(fail(format!("the Bearer realm {realm:?} is not an http(s) URL")));
        }
        let scope = params
            .get("scope")
            .cloned()
            .unwrap_or_else(|| format!("repository:{}:pull", self.repository));
        let mut token_url = format!(
            "{realm}{}scope={}",
            if realm.contains('?') { '&' } else { '?' },
            encode(&scope)
        );
        if let Some(service) = params.get("service") {
            token_url.push_str(&format!("&service={}", encode(service)));
        }
        let resp = self.agent.get(&token_url).call().map_err(|e| http_err(&token_url, e))?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(fail(format!("the token endpoint {realm} answered HTTP {status}")));
        }
        let mut body = Vec::new();
        resp.into_body()
            .into_reader()
            .take(MAX_DOCUMENT)
            .read_to_end(&mut body)
            .map_err(|e| fail(format!("reading the token: {e}")))?;
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let t: Token = serde_json::from_slice(&body).map_err(|source| ImageError::Json {
            what: format!("the token from {realm}"),
            source,
        })?;
        t.token
            .or(t.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| fail(format!("the token endpoint {realm} sent no token")))
    }

    /// A manifest by tag or digest.
    fn manifest(&self, reference: &str) -> Result<Fetched, ImageError> {
        let url = format!("{}/manifests/{reference}", self.base);
        let resp = self.get(&url, ACCEPT)?;
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.split(';').next().unwrap_or(s).trim().to_string())
        };
        let media_type = header("content-type");
        let digest = header("docker-content-digest");
        let mut bytes = Vec::new();
        resp.into_body()
            .into_reader()
            .take(MAX_DOCUMENT + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| ImageError::Registry {
                url: url.clone(),
                reason: format!("reading the manifest: {e}"),
            })?;
        if bytes.len() as u64 > MAX_DOCUMENT {
            return Err(ImageError::format(
                url,
                format!("a manifest larger than {MAX_DOCUMENT} bytes"),
            ));
        }
        Ok(Fetched {
            bytes,
            media_type,
            header_digest: digest,
        })
    }
}

struct Fetched {
    bytes: Vec<u8>,
    media_type: Option<String>,
    /// Docker-Content-Digest, when the registry sends it.
    header_digest: Option<String>,
}

impl Blobs for Registry {
    fn put(&self, staging: &mut Staging, desc: &Descriptor) -> Result<Digest, ImageError> {
        let digest = desc.digest()?;
        if staging.blob(&digest).is_some() {
            return Ok(digest);
        }
        let is_manifest = desc
            .media_type
            .as_deref()
            .is_some_and(|m| m.contains("manifest") || m.contains("index"));
        let (url, accept) = if is_manifest {
            (format!("{}/manifests/{digest}", self.base), ACCEPT)
        } else {
            (format!("{}/blobs/{digest}", self.base), "*/*")
        };
        let resp = self.get(&url, accept)?;
        staging.put_blob(&url, resp.into_body().into_reader(), Some(&digest), Some(desc.size))
    }
}

fn http_err(url: &str, e: ureq::Error) -> ImageError {
    ImageError::Http {
        url: url.to_string(),
        source: Box::new(e),
    }
}

/// `key="value", key=value` pairs of a WWW-Authenticate challenge (values may hold commas).
fn parse_challenge(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = s.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        out.insert(key, value.to_string());
        rest = next.trim_start_matches([',', ' ']);
    }
    out
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        let p = parse_challenge(
            r#"realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(p.get("realm").map(String::as_str), Some("https://auth.example/token"));
        assert_eq!(p.get("service").map(String::as_str), Some("registry.example"));
        assert_eq!(p.get("scope").map(String::as_str), Some("repository:a/b:pull,push"));
        assert_eq!(encode("repository:a/b:pull"), "repository%3Aa%2Fb%3Apull");
        assert!(is_local("127.0.0.1:5000") && is_local("localhost") && is_local("[::1]:80"));
        assert!(!is_local("registry-1.docker.io") && !is_local("127.0.0.2:5000"));
    }
}
