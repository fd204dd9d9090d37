//! Test images built offline: a busybox image from Debian's busybox-static (`/bin/busybox`),
//! written as an OCI image layout, an oci-archive or a docker-archive (`docker save`'s format).
//!
//! The busybox image has three layers, so that stacking can be checked:
//! 1. gzip: `/bin/busybox` with its applets as hard links, `/etc/passwd`, `/etc/group`, `/tmp`,
//!    [`HIDDEN_FILE`] and [`OPAQUE_DIR`]`/old`;
//! 2. zstd: a whiteout of [`HIDDEN_FILE`], [`OPAQUE_DIR`] made opaque, with `new` in it;
//! 3. plain tar: `/etc/hello` ([`HELLO`]) and the symlink `/etc/motd` → `hello`.
//!
//! Its config: `Cmd ["/bin/sh"]`, a PATH, `WorkingDir /`. The lower-level pieces ([`Tar`],
//! [`image`], the `write_*` functions) build other images, hostile ones included.
//! Everything here panics on failure: it is test code.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;
use sha2::{Digest as _, Sha256};

/// Debian's busybox-static.
pub const BUSYBOX: &str = "/bin/busybox";
/// In layer 1, whited out by layer 2: absent from the image's rootfs.
pub const HIDDEN_FILE: &str = "etc/removed-later";
/// Has `old` in layer 1; layer 2 makes it opaque and adds `new`: the rootfs has only `new`.
pub const OPAQUE_DIR: &str = "var/opaque";
/// `/etc/hello`'s content (layer 3).
pub const HELLO: &str = "hello from layer 3\n";
/// The applets linked to busybox in `/bin`.
pub const APPLETS: &[&str] = &[
    "sh", "ls", "cat", "echo", "sleep", "id", "env", "test", "true", "false", "ps", "mount", "grep", "wc", "touch",
    "mkdir", "rm", "stat", "readlink", "hostname", "kill", "head", "tail", "date",
];

/// Whether `/bin/busybox` (Debian's busybox-static) is installed.
pub fn busybox_available() -> bool {
    Path::new(BUSYBOX).is_file()
}

/// `sha256:<hex>` of `data`.
pub fn sha256(data: &[u8]) -> String {
    let hex: String = Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn hex(digest: &str) -> &str {
    digest.trim_start_matches("sha256:")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// A layer tar built entry by entry. Names are written as given (≤ 100 bytes, no checks), so
/// that hostile layers (`../x`, `/abs`) can be made too.
#[derive(Default)]
pub struct Tar {
    builder: Option<tar::Builder<Vec<u8>>>,
}

impl Tar {
    pub fn new() -> Tar {
        Tar {
            builder: Some(tar::Builder::new(Vec::new())),
        }
    }

    fn header(name: &str, kind: tar::EntryType, mode: u32, size: u64, link: &str) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        assert!(
            name.len() <= 100 && link.len() <= 100,
            "names up to 100 bytes: {name} {link}"
        );
        let ustar = h.as_ustar_mut().expect("ustar header");
        ustar.name[..name.len()].copy_from_slice(name.as_bytes());
        ustar.linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_size(size);
        h.set_cksum();
        h
    }

    fn append(&mut self, h: &tar::Header, data: &[u8]) -> &mut Tar {
        self.builder
            .as_mut()
            .expect("tar builder")
            .append(h, data)
            .expect("append a tar entry");
        self
    }

    pub fn dir(&mut self, name: &str, mode: u32) -> &mut Tar {
        let h = Self::header(name, tar::EntryType::Directory, mode, 0, "");
        self.append(&h, &[])
    }

    pub fn file(&mut self, name: &str, mode: u32, data: &[u8]) -> &mut Tar {
        let h = Self::header(name, tar::EntryType::Regular, mode, data.len() as u64, "");
        self.append(&h, data)
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Tar {
        let h = Self::header(name, tar::EntryType::Symlink, 0o777, 0, target);
        self.append(&h, &[])
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Tar {
        let h = Self::header(name, tar::EntryType::Link, 0o755, 0, target);
        self.append(&h, &[])
    }

    /// A regular file with an owner.
    pub fn file_owned(&mut self, name: &str, mode: u32, uid: u64, gid: u64, data: &[u8]) -> &mut Tar {
        let mut h = Self::header(name, tar::EntryType::Regular, mode, data.len() as u64, "");
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_cksum();
        self.append(&h, data)
    }

    /// A character device, block device or fifo (`kind`).
    pub fn node(&mut self, name: &str, kind: tar::EntryType, mode: u32, major: u32, minor: u32) -> &mut Tar {
        let mut h = Self::header(name, kind, mode, 0, "");
        h.set_device_major(major).expect("major");
        h.set_device_minor(minor).expect("minor");
        h.set_cksum();
        self.append(&h, &[])
    }

    /// PAX records for the next entry (`SCHILY.xattr.NAME` for xattrs, `uid`, `gid`…).
    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Tar {
        self.builder
            .as_mut()
            .expect("tar builder")
            .append_pax_extensions(records.iter().copied())
            .expect("append pax records");
        self
    }

    /// Docker's whiteout of `path` (`dir/.wh.name`).
    pub fn whiteout(&mut self, path: &str) -> &mut Tar {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let wh = if dir.is_empty() {
            format!(".wh.{name}")
        } else {
            format!("{dir}/.wh.{name}")
        };
        self.file(&wh, 0o600, &[])
    }

    /// Docker's opaque-directory marker in `dir`.
    pub fn opaque(&mut self, dir: &str) -> &mut Tar {
        self.file(&format!("{dir}/.wh..wh..opq"), 0o600, &[])
    }

    pub fn finish(&mut self) -> Vec<u8> {
        self.builder
            .take()
            .expect("tar builder")
            .into_inner()
            .expect("finish the tar")
    }
}

/// A layer: its uncompressed tar and how the blob is compressed.
pub struct Layer {
    pub tar: Vec<u8>,
    pub compression: Compression,
}

/// An image's blobs: the manifest, the config and the layers (compressed as asked).
#[derive(Clone)]
pub struct ImageFiles {
    pub manifest: Vec<u8>,
    pub config: Vec<u8>,
    /// (blob, media type, diff id)
    pub layers: Vec<(Vec<u8>, String, String)>,
}

impl ImageFiles {
    pub fn manifest_digest(&self) -> String {
        sha256(&self.manifest)
    }
    /// The image id a store gives it: the config's digest.
    pub fn id(&self) -> String {
        sha256(&self.config)
    }
    /// Every blob with its digest: config, layers, manifest.
    pub fn blobs(&self) -> Vec<(String, &[u8])> {
        let mut out = vec![(sha256(&self.config), self.config.as_slice())];
        out.extend(self.layers.iter().map(|(b, _, _)| (sha256(b), b.as_slice())));
        out.push((sha256(&self.manifest), self.manifest.as_slice()));
        out
    }
}

fn compress(tar: &[u8], c: Compression) -> (Vec<u8>, &'static str) {
    match c {
        Compression::None => (tar.to_vec(), "application/vnd.oci.image.layer.v1.tar"),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(tar).expect("gzip");
            (e.finish().expect("gzip"), "application/vnd.oci.image.layer.v1.tar+gzip")
        }
        Compression::Zstd => (
            ruzstd::encoding::compress_to_vec(tar, ruzstd::encoding::CompressionLevel::Fastest),
            "application/vnd.oci.image.layer.v1.tar+zstd",
        ),
    }
}

/// An image from layers and a config (`config` is the config's `config` object: Cmd, Env…).
pub fn image(layers: Vec<Layer>, config: serde_json::Value) -> ImageFiles {
    let layers: Vec<(Vec<u8>, String, String)> = layers
        .iter()
        .map(|l| {
            let (blob, mt) = compress(&l.tar, l.compression);
            (blob, mt.to_string(), sha256(&l.tar))
        })
        .collect();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.2.clone()).collect::<Vec<_>>()},
    }))
    .expect("config JSON");
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len()},
        "layers": layers.iter().map(|(b, mt, _)| json!({"mediaType": mt, "digest": sha256(b), "size": b.len()})).collect::<Vec<_>>(),
    }))
    .expect("manifest JSON");
    ImageFiles {
        manifest,
        config,
        layers,
    }
}

/// The busybox image's three layers (see the module's doc).
pub fn busybox_layers() -> Vec<Layer> {
    let busybox = fs::read(BUSYBOX).expect("read /bin/busybox (install busybox-static)");
    let mut l1 = Tar::new();
    l1.dir("bin", 0o755).file("bin/busybox", 0o755, &busybox);
    for applet in APPLETS {
        l1.hardlink(&format!("bin/{applet}"), "bin/busybox");
    }
    l1.dir("etc", 0o755)
        .file(
            "etc/passwd",
            0o644,
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        )
        .file("etc/group", 0o644, b"root:x:0:\nnogroup:x:65534:\n")
        .file(HIDDEN_FILE, 0o644, b"from layer 1, whited out by layer 2\n")
        .dir("tmp", 0o1777)
        .dir("root", 0o700)
        .dir("proc", 0o755)
        .dir("sys", 0o755)
        .dir("dev", 0o755)
        .dir("var", 0o755)
        .dir(OPAQUE_DIR, 0o755)
        .file(&format!("{OPAQUE_DIR}/old"), 0o644, b"old\n");
    let mut l2 = Tar::new();
    l2.dir("etc", 0o755)
        .whiteout(HIDDEN_FILE)
        .dir(OPAQUE_DIR, 0o755)
        .opaque(OPAQUE_DIR)
        .file(&format!("{OPAQUE_DIR}/new"), 0o644, b"new\n");
    let mut l3 = Tar::new();
    l3.dir("etc", 0o755)
        .file("etc/hello", 0o644, HELLO.as_bytes())
        .symlink("etc/motd", "hello");
    vec![
        Layer {
            tar: l1.finish(),
            compression: Compression::Gzip,
        },
        Layer {
            tar: l2.finish(),
            compression: Compression::Zstd,
        },
        Layer {
            tar: l3.finish(),
            compression: Compression::None,
        },
    ]
}

/// The busybox image's blobs (built once per test process: compressing busybox is slow in a
/// debug build).
pub fn busybox_image() -> ImageFiles {
    static IMAGE: std::sync::OnceLock<ImageFiles> = std::sync::OnceLock::new();
    IMAGE.get_or_init(build_busybox_image).clone()
}

fn build_busybox_image() -> ImageFiles {
    image(
        busybox_layers(),
        json!({
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh"],
            "WorkingDir": "/",
        }),
    )
}

fn write(path: &Path, data: &[u8]) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("create a directory");
    }
    fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn manifest_descriptor(img: &ImageFiles, name: &str) -> serde_json::Value {
    json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": img.manifest_digest(),
        "size": img.manifest.len(),
        "annotations": {"org.opencontainers.image.ref.name": name},
        "platform": {"architecture": "amd64", "os": "linux"},
    })
}

/// Writes `img` as an OCI image layout in `dir/<file-safe name>`, its index naming it `name`
/// (org.opencontainers.image.ref.name). Returns the layout's directory.
pub fn write_oci_layout(img: &ImageFiles, dir: &Path, name: &str) -> PathBuf {
    let layout = dir.join(name.replace(['/', ':'], "_"));
    for (digest, data) in img.blobs() {
        write(&layout.join("blobs/sha256").join(hex(&digest)), data);
    }
    write(&layout.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#);
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [manifest_descriptor(img, name)],
    });
    write(
        &layout.join("index.json"),
        &serde_json::to_vec(&index).expect("index JSON"),
    );
    layout
}

/// Like [`write_oci_layout`], but the index names a nested image index with an arm64 entry
/// first and the amd64 one second (a multi-platform image).
pub fn write_oci_layout_multiarch(img: &ImageFiles, dir: &Path, name: &str) -> PathBuf {
    let layout = write_oci_layout(img, dir, name);
    let mut arm = manifest_descriptor(img, name);
    arm["platform"] = json!({"architecture": "arm64", "os": "linux"});
    let nested = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [arm, manifest_descriptor(img, name)],
    }))
    .expect("index JSON");
    write(&layout.join("blobs/sha256").join(hex(&sha256(&nested))), &nested);
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": sha256(&nested),
            "size": nested.len(),
            "annotations": {"org.opencontainers.image.ref.name": name},
        }],
    });
    write(
        &layout.join("index.json"),
        &serde_json::to_vec(&index).expect("index JSON"),
    );
    layout
}

fn tar_dir(src: &Path, dest: &Path) {
    let file = fs::File::create(dest).unwrap_or_else(|e| panic!("create {}: {e}", dest.display()));
    let mut b = tar::Builder::new(file);
    b.append_dir_all(".", src).expect("tar the layout");
    b.finish().expect("finish the tar");
}

/// Writes `img` as an oci-archive (an OCI layout in a tar) at `dir/<name>.oci.tar`.
pub fn write_oci_archive(img: &ImageFiles, dir: &Path, name: &str) -> PathBuf {
    let staging = dir.join(format!(".oci-archive-{}", std::process::id()));
    let layout = write_oci_layout(img, &staging, name);
    let archive = dir.join(format!("{}.oci.tar", name.replace(['/', ':'], "_")));
    tar_dir(&layout, &archive);
    fs::remove_dir_all(&staging).expect("remove the staging layout");
    archive
}

/// Writes `img` as a docker-archive (`docker save`: manifest.json, repositories, the config as
/// `<hex>.json`, each layer as `<hex>/layer.tar`) at `dir/<name>.docker.tar`, tagged `name`.
pub fn write_docker_archive(img: &ImageFiles, dir: &Path, name: &str) -> PathBuf {
    let staging = dir.join(format!(".docker-archive-{}", std::process::id()));
    let config_name = format!("{}.json", hex(&img.id()));
    write(&staging.join(&config_name), &img.config);
    let mut layers = Vec::new();
    for (blob, _, _) in &img.layers {
        let path = format!("{}/layer.tar", hex(&sha256(blob)));
        write(&staging.join(&path), blob);
        layers.push(path);
    }
    let manifest = json!([{"Config": config_name, "RepoTags": [name], "Layers": layers}]);
    write(
        &staging.join("manifest.json"),
        &serde_json::to_vec(&manifest).expect("manifest JSON"),
    );
    if let Some((repo, tag)) = name.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
        let repositories = json!({ repo: { tag: hex(&sha256(&img.layers.last().expect("a layer").0)) } });
        write(
            &staging.join("repositories"),
            &serde_json::to_vec(&repositories).expect("JSON"),
        );
    }
    let archive = dir.join(format!("{}.docker.tar", name.replace(['/', ':'], "_")));
    tar_dir(&staging, &archive);
    fs::remove_dir_all(&staging).expect("remove the staging directory");
    archive
}

/// The busybox image as an OCI layout directory in `dir`, named `name`.
pub fn busybox_oci_layout(dir: &Path, name: &str) -> PathBuf {
    write_oci_layout(&busybox_image(), dir, name)
}

/// The busybox image as an oci-archive in `dir`, named `name`.
pub fn busybox_oci_archive(dir: &Path, name: &str) -> PathBuf {
    write_oci_archive(&busybox_image(), dir, name)
}

/// The busybox image as a docker-archive in `dir`, tagged `name`.
pub fn busybox_docker_archive(dir: &Path, name: &str) -> PathBuf {
    write_docker_archive(&busybox_image(), dir, name)
}
