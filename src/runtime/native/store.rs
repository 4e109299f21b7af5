//! The native target's images: pulled with oci-client (an index resolved to this platform's
//! manifest, every blob's digest verified) into a content-addressed store, each layer unpacked
//! once into its own folder with whiteouts turned into overlayfs's own, and shared by every
//! image that lists it. A container's root filesystem is an overlay of these folders.
//!
//! ```text
//! images/index.json          reference (repo:tag, repo@digest) -> image id (config digest)
//! images/configs/HEX.json    an image: its config and its layers, bottom first
//! images/layers/HEX/         a layer's files, by the digest of its blob
//! ```

use crate::observed::{normalize_reference, repository};
use crate::runtime::registry;
use crate::state_file::write_atomic;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::{Client, Reference};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// An image as the store keeps it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImageRecord {
    /// `sha256:...` of the config: the image id, as Docker's.
    pub id: String,
    /// The image config (`config`, `rootfs`, `history`...) as the registry served it.
    pub config: serde_json::Value,
    /// Layer blob digests, bottom first.
    pub layers: Vec<String>,
}

impl ImageRecord {
    /// The image's own run settings (`Entrypoint`, `Cmd`, `Env`, `WorkingDir`, `User`...).
    pub fn run_config(&self) -> &serde_json::Value {
        &self.config["config"]
    }
}

/// Why an image could not be pulled.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("invalid reference `{reference}`: {source}")]
    Reference { reference: String, source: oci_client::ParseError },
    #[error("registry {registry}: {source}")]
    Registry { registry: String, source: oci_client::errors::OciDistributionError },
    #[error("registry {registry}: layer {digest}: {source}")]
    Layer { registry: String, digest: String, source: oci_client::errors::OciDistributionError },
    #[error("the image config's digest is {found}, its manifest says {declared}")]
    ConfigDigest { found: String, declared: String },
    #[error("layer {0} is compressed with zstd, which the native target cannot unpack yet")]
    Zstd(String),
    #[error("unpacking layer {digest}: {source}")]
    Unpack { digest: String, source: std::io::Error },
    #[error("the image config is not JSON: {0}")]
    Config(serde_json::Error),
    #[error("{}: {source}", .path.display())]
    Io { path: std::path::PathBuf, source: std::io::Error },
}

/// Why an image could not be removed.
#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    #[error("no such image: {0}")]
    NoSuchImage(String),
    #[error("image {0} is used by a container")]
    InUse(String),
    #[error("cannot write the image index: {0}")]
    Index(#[from] std::io::Error),
}

pub struct Store {
    root: PathBuf,
    /// The most one layer may unpack to (the host policy's `maxLayerSize`).
    pub max_layer_size: u64,
    /// One writer of the index at a time within this process; each write is a rename.
    index_lock: std::sync::Mutex<()>,
}

/// The host policy's default `maxLayerSize`.
pub const DEFAULT_MAX_LAYER_SIZE: u64 = 2 << 30;

fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

impl Store {
    pub fn open(root: PathBuf) -> std::io::Result<Store> {
        for d in ["configs", "layers"] {
            std::fs::create_dir_all(root.join(d))?;
        }
        let store = Store { root, max_layer_size: DEFAULT_MAX_LAYER_SIZE, index_lock: std::sync::Mutex::new(()) };
        store.sweep();
        Ok(store)
    }

    /// Removes what a download or an unpacking of a process that is gone left behind (it was
    /// killed midway); those of live processes are theirs.
    fn sweep(&self) {
        for e in std::fs::read_dir(self.layers_dir()).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let Some((_, suffix)) = name.split_once(".blob").or_else(|| name.split_once(".unpacking")) else {
                continue;
            };
            let pid = suffix.split('-').next().and_then(|p| p.parse::<i32>().ok());
            let alive = pid.is_some_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
            if !alive {
                let _ =
                    if e.path().is_dir() { std::fs::remove_dir_all(e.path()) } else { std::fs::remove_file(e.path()) };
            }
        }
    }

    pub fn layers_dir(&self) -> PathBuf {
        self.root.join("layers")
    }

    pub fn layer_dir(&self, digest: &str) -> PathBuf {
        self.layers_dir().join(hex_of(digest))
    }

    /// Every reference the store holds, to its image id.
    pub fn index(&self) -> BTreeMap<String, String> {
        std::fs::read(self.root.join("index.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn save_index(&self, index: &BTreeMap<String, String>) -> std::io::Result<()> {
        write_atomic(&self.root.join("index.json"), &serde_json::to_vec_pretty(index).expect("maps serialize"))
    }

    /// The image a reference (or an image id) names.
    pub fn image(&self, reference: &str) -> Option<ImageRecord> {
        let id = if reference.starts_with("sha256:") {
            reference.to_string()
        } else {
            self.index().get(&normalize_reference(reference)).cloned()?
        };
        let bytes = std::fs::read(self.root.join("configs").join(format!("{}.json", hex_of(&id)))).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Pulls `reference` for `platform` (`os/arch[/variant]`, default this machine's); returns
    /// the image id. Layers already in the store are not fetched again.
    pub async fn pull(&self, reference: &str, platform: Option<&str>) -> Result<String, PullError> {
        let r: Reference =
            reference.parse().map_err(|source| PullError::Reference { reference: reference.to_string(), source })?;
        let reg = r.resolve_registry().to_string();
        let protocol = if registry::is_loopback(&reg) {
            ClientProtocol::HttpsExcept(vec![reg.clone()])
        } else {
            ClientProtocol::Https
        };
        let mut config = ClientConfig { protocol, ..Default::default() };
        if let Some(p) = platform {
            let want: Vec<String> = p.split('/').map(str::to_string).collect();
            config.platform_resolver = Some(Box::new(move |entries| {
                entries
                    .iter()
                    .find(|e| {
                        e.platform.as_ref().is_some_and(|pl| {
                            pl.os.to_string() == want[0]
                                && want.get(1).is_none_or(|a| pl.architecture.to_string() == *a)
                                && want.get(2).is_none_or(|v| pl.variant.as_deref() == Some(v.as_str()))
                        })
                    })
                    .map(|e| e.digest.clone())
            }));
        }
        crate::tls::init();
        let client = Client::new(config);
        let auth = registry::auth_for(&reg);
        let (manifest, manifest_digest, config_text) = client
            .pull_manifest_and_config(&r, &auth)
            .await
            .map_err(|source| PullError::Registry { registry: reg.clone(), source })?;
        let id = format!("sha256:{}", hex::encode(Sha256::digest(config_text.as_bytes())));
        if id != manifest.config.digest {
            return Err(PullError::ConfigDigest { found: id, declared: manifest.config.digest.clone() });
        }
        if let Some(layer) = manifest.layers.iter().find(|l| l.media_type.contains("zstd")) {
            return Err(PullError::Zstd(layer.digest.clone()));
        }
        // Up to three layers at a time, as Docker fetches them.
        let missing: Vec<_> = manifest.layers.iter().filter(|l| !self.layer_dir(&l.digest).exists()).collect();
        let fetches = futures_util::stream::iter(missing.into_iter().map(|layer| {
            let (client, r, reg) = (&client, &r, &reg);
            async move {
                tracing::info!(target: "hawser::progress", image = %reference, "{}: Pulling layer", &hex_of(&layer.digest)[..12]);
                let blob = self.layers_dir().join(format!("{}.blob{}", hex_of(&layer.digest), unique()));
                let file = tokio::fs::File::create(&blob)
                    .await
                    .map_err(|source| PullError::Io { path: blob.clone(), source })?;
                // Verified against the layer's digest as it streams in.
                if let Err(source) = client.pull_blob(r, layer, file).await {
                    let _ = std::fs::remove_file(&blob);
                    return Err(PullError::Layer { registry: reg.clone(), digest: layer.digest.clone(), source });
                }
                let (media, dir, blob2) = (layer.media_type.clone(), self.layer_dir(&layer.digest), blob.clone());
                let max = self.max_layer_size;
                let unpacked = tokio::task::spawn_blocking(move || unpack_layer(&blob2, &media, &dir, max))
                    .await
                    .expect("unpacking a layer does not panic");
                let _ = std::fs::remove_file(&blob);
                unpacked.map_err(|source| PullError::Unpack { digest: layer.digest.clone(), source })
            }
        }));
        use futures_util::StreamExt;
        let results: Vec<Result<(), PullError>> = fetches.buffer_unordered(3).collect().await;
        results.into_iter().collect::<Result<Vec<()>, PullError>>()?;
        let record = ImageRecord {
            id: id.clone(),
            config: serde_json::from_str(&config_text).map_err(PullError::Config)?,
            layers: manifest.layers.iter().map(|l| l.digest.clone()).collect(),
        };
        let path = self.root.join("configs").join(format!("{}.json", hex_of(&id)));
        write_atomic(&path, &serde_json::to_vec(&record).expect("records serialize"))
            .map_err(|source| PullError::Io { path: path.clone(), source })?;
        let _guard = self.index_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut index = self.index();
        if !reference.contains('@') {
            index.insert(normalize_reference(reference), id.clone());
        }
        index.insert(format!("{}@{manifest_digest}", repository(reference)), id.clone());
        self.save_index(&index).map_err(|source| PullError::Io { path: self.root.join("index.json"), source })?;
        Ok(id)
    }

    /// Forgets `reference`; the image and the layers only it used go when nothing else names
    /// it and no container in `in_use` runs it.
    pub fn remove(&self, reference: &str, in_use: &[String]) -> Result<(), RemoveError> {
        let _guard = self.index_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut index = self.index();
        let key = if reference.starts_with("sha256:") { reference.to_string() } else { normalize_reference(reference) };
        let id = match index.remove(&key) {
            Some(id) => id,
            None if key.starts_with("sha256:") => key.clone(),
            None => return Err(RemoveError::NoSuchImage(reference.to_string())),
        };
        if in_use.contains(&id) {
            return Err(RemoveError::InUse(reference.to_string()));
        }
        if index.values().any(|v| *v == id) && !key.starts_with("sha256:") {
            self.save_index(&index)?;
            return Ok(());
        }
        index.retain(|_, v| *v != id);
        self.save_index(&index)?;
        let _ = std::fs::remove_file(self.root.join("configs").join(format!("{}.json", hex_of(&id))));
        self.collect_layers();
        Ok(())
    }

    /// Removes layers that no image lists.
    fn collect_layers(&self) {
        let mut used = std::collections::BTreeSet::new();
        for e in std::fs::read_dir(self.root.join("configs")).into_iter().flatten().flatten() {
            if let Some(r) = std::fs::read(e.path()).ok().and_then(|b| serde_json::from_slice::<ImageRecord>(&b).ok()) {
                used.extend(r.layers.iter().map(|l| hex_of(l).to_string()));
            }
        }
        for e in std::fs::read_dir(self.layers_dir()).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.len() == 64 && !used.contains(&name) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// A suffix no other download or unpacking in this process or another uses at the same time.
fn unique() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!("{}-{}", std::process::id(), N.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// Unpacks a layer blob into `dest` (made whole or not at all: a failed unpack leaves nothing),
/// turning the OCI whiteouts into overlayfs's: `.wh.NAME` becomes a 0:0 character device NAME,
/// `.wh..wh..opq` makes its folder opaque. At most `max_size` bytes are unpacked, so a small
/// compressed blob cannot fill the disk. Two pulls of one layer at once (two images sharing it)
/// both succeed; one's copy is kept.
pub fn unpack_layer(blob: &Path, media_type: &str, dest: &Path, max_size: u64) -> std::io::Result<()> {
    let tmp = dest.with_extension(format!("unpacking{}", unique()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    if let Err(e) = unpack_into(blob, media_type, &tmp, max_size) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    match std::fs::rename(&tmp, dest) {
        Err(_) if dest.is_dir() => std::fs::remove_dir_all(&tmp),
        other => other,
    }
}

fn unpack_into(blob: &Path, media_type: &str, tmp: &Path, max_size: u64) -> std::io::Result<()> {
    let mut head = [0u8; 2];
    let gzip = {
        let mut f = std::fs::File::open(blob)?;
        f.read_exact(&mut head).is_ok() && head == [0x1f, 0x8b]
    } || media_type.ends_with("gzip");
    let file = std::io::BufReader::new(std::fs::File::open(blob)?);
    let reader: Box<dyn Read> = if gzip { Box::new(flate2::read::GzDecoder::new(file)) } else { Box::new(file) };
    let over = std::rc::Rc::new(std::cell::Cell::new(false));
    let mut ar = tar::Archive::new(Capped { inner: reader, left: max_size, over: over.clone() });
    ar.set_preserve_permissions(true);
    ar.set_preserve_ownerships(true);
    ar.set_unpack_xattrs(true);
    ar.set_overwrite(true);
    let result = unpack_entries(&mut ar, tmp);
    if over.get() {
        return Err(over_cap(max_size));
    }
    result
}

fn unpack_entries<R: Read>(ar: &mut tar::Archive<R>, tmp: &Path) -> std::io::Result<()> {
    for entry in ar.entries()? {
        let mut e = entry?;
        let path = e.path()?.into_owned();
        let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let parent = path.parent().unwrap_or(Path::new(""));
        if parent.components().any(|c| !matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir)) {
            continue; // `..` or an absolute path: never outside the layer
        }
        // Whiteouts are made here, not by tar: their folder is opened one component at a time
        // without following links, so a link an earlier entry made cannot lead them out.
        if name == ".wh..wh..opq" {
            let d = contained_dir(tmp, parent)?;
            fset_xattr(&d, "trusted.overlay.opaque", b"y")?;
        } else if let Some(hidden) = name.strip_prefix(".wh.") {
            let d = contained_dir(tmp, parent)?;
            nix::sys::stat::mknodat(
                &d,
                hidden,
                nix::sys::stat::SFlag::S_IFCHR,
                nix::sys::stat::Mode::empty(),
                nix::sys::stat::makedev(0, 0),
            )
            .map_err(std::io::Error::from)?;
        } else if let Err(err) = e.unpack_in(tmp) {
            // tar's message names the entry and hides the cause: say both.
            let cause = std::error::Error::source(&err).map(|c| format!(": {c}")).unwrap_or_default();
            return Err(std::io::Error::new(err.kind(), format!("{err}{cause}")));
        }
    }
    Ok(())
}

/// The error of a layer that grew past its cap, wherever tar met it.
fn over_cap(max_size: u64) -> std::io::Error {
    std::io::Error::other(format!("the layer unpacks to more than {max_size} bytes, the host policy's maxLayerSize"))
}

/// The most of an image file (`etc/passwd`, `etc/group`) read on the host.
const MAX_IMAGE_FILE: u64 = 1 << 20;

/// A small file of an image as its root filesystem shows it, read from its layers (top first)
/// on the host without following any link: the topmost layer that has the path decides, a
/// whiteout or an opaque folder above hides what is below, and a link, a device or a file over
/// 1 MiB is not read (the image chose it; the host must not be read through it).
pub fn read_image_file(layers: &[PathBuf], rel: &str) -> Option<String> {
    use nix::fcntl::{open, openat, OFlag};
    use nix::sys::stat::{fstat, Mode, SFlag};
    let dir_flags = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY;
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    let (last, folders) = parts.split_last()?;
    if parts.contains(&"..") {
        return None;
    }
    'layers: for layer in layers {
        let Ok(mut dir) = open(layer, dir_flags, Mode::empty()) else { continue };
        for name in folders {
            match openat(&dir, *name, dir_flags, Mode::empty()) {
                Ok(d) => dir = d,
                Err(nix::errno::Errno::ENOENT) => continue 'layers,
                // A whiteout, a link or a file where a folder should be: what is below is hidden.
                Err(_) => return None,
            }
        }
        let file = match openat(
            &dir,
            *last,
            OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY | OFlag::O_NONBLOCK,
            Mode::empty(),
        ) {
            Ok(f) => f,
            Err(nix::errno::Errno::ENOENT) if !is_opaque(&dir) => continue,
            Err(_) => return None,
        };
        let st = fstat(&file).ok()?;
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG || st.st_size as u64 > MAX_IMAGE_FILE
        {
            return None;
        }
        let mut text = String::new();
        std::fs::File::from(file).take(MAX_IMAGE_FILE).read_to_string(&mut text).ok()?;
        return Some(text);
    }
    None
}

fn is_opaque(dir: &std::os::fd::OwnedFd) -> bool {
    use std::os::fd::AsRawFd;
    let mut buf = [0u8; 1];
    let n = std::ffi::CString::new("trusted.overlay.opaque").expect("no NUL");
    // SAFETY: the name is NUL-terminated, the buffer is ours and its length is given.
    let r = unsafe { libc::fgetxattr(dir.as_raw_fd(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    r == 1 && buf[0] == b'y'
}

/// The decompressed stream, ended with an error past its cap (and `over` set, since tar may
/// report the error as its own).
struct Capped<R> {
    inner: R,
    left: u64,
    over: std::rc::Rc<std::cell::Cell<bool>>,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        match self.left.checked_sub(n as u64) {
            Some(left) => self.left = left,
            None => {
                self.over.set(true);
                return Err(std::io::Error::other("over the cap"));
            }
        }
        Ok(n)
    }
}

/// The folder `rel` inside `root`, made where missing, reached without following any link:
/// a component that is a link or a file is an error, never a way out of `root`.
fn contained_dir(root: &Path, rel: &Path) -> std::io::Result<std::os::fd::OwnedFd> {
    use nix::fcntl::{open, openat, OFlag};
    use nix::sys::stat::Mode;
    let flags = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY;
    let mut dir = open(root, flags, Mode::empty())?;
    for c in rel.components() {
        let std::path::Component::Normal(name) = c else { continue };
        match nix::sys::stat::mkdirat(&dir, name, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(e.into()),
        }
        dir = openat(&dir, name, flags, Mode::empty()).map_err(|e| match e {
            nix::errno::Errno::ELOOP | nix::errno::Errno::ENOTDIR => std::io::Error::other(format!(
                "a whiteout in `{}` lies under a link or a file of the layer; refusing the layer",
                rel.display()
            )),
            e => e.into(),
        })?;
    }
    Ok(dir)
}

fn fset_xattr(fd: &std::os::fd::OwnedFd, name: &str, value: &[u8]) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let n = std::ffi::CString::new(name)?;
    // SAFETY: the name is NUL-terminated, the value's length is its own, the descriptor is open.
    let r = unsafe { libc::fsetxattr(fd.as_raw_fd(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            if path.ends_with('/') {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, path, &[][..]).unwrap();
            } else {
                h.set_mode(0o644);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, path, *data).unwrap();
            }
        }
        let tar = b.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn whiteouts_become_overlay_whiteouts() {
        if !nix::unistd::geteuid().is_root() {
            return; // mknod and trusted.* xattrs need root, as the native target itself does
        }
        let dir = tempfile::tempdir().unwrap();
        let blob = dir.path().join("blob");
        std::fs::write(
            &blob,
            layer(&[("etc/", b""), ("etc/motd", b"hi\n"), ("etc/.wh.passwd", b""), ("var/.wh..wh..opq", b"")]),
        )
        .unwrap();
        let dest = dir.path().join("layer");
        unpack_layer(&blob, "application/vnd.oci.image.layer.v1.tar+gzip", &dest, 1 << 20).unwrap();
        assert_eq!(std::fs::read_to_string(dest.join("etc/motd")).unwrap(), "hi\n");
        use std::os::unix::fs::FileTypeExt;
        let wh = std::fs::symlink_metadata(dest.join("etc/passwd")).unwrap();
        assert!(wh.file_type().is_char_device(), "a whiteout is a character device");
        assert!(!dest.join("etc/.wh.passwd").exists() && !dest.join("var/.wh..wh..opq").exists());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains("unpacking"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        // The same layer again (a second image sharing it, pulled at the same time): kept once.
        unpack_layer(&blob, "application/vnd.oci.image.layer.v1.tar+gzip", &dest, 1 << 20).unwrap();
        assert_eq!(std::fs::read_to_string(dest.join("etc/motd")).unwrap(), "hi\n");
    }

    fn gzip(tar: Vec<u8>) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        gz.finish().unwrap()
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.contains("unpacking") || n.contains(".blob"))
            .collect()
    }

    /// Attack: a layer `evil -> /some/host/dir`, then `evil/.wh.X`, `evil/newdir/deeper/.wh.Y`
    /// and `evil/victimdir/.wh..wh..opq` made folders and device nodes on the host and set
    /// `trusted.overlay.opaque` on a host folder, from an `Image` with `pull: always` alone.
    #[test]
    fn whiteouts_under_a_link_of_the_layer_write_nothing_on_the_host() {
        if !nix::unistd::geteuid().is_root() {
            return; // mknod and trusted.* xattrs need root, as the native target itself does
        }
        let dir = tempfile::tempdir().unwrap();
        let host = tempfile::tempdir().unwrap();
        std::fs::create_dir(host.path().join("victimdir")).unwrap();
        for attack in [".wh.X", "newdir/deeper/.wh.Y", "victimdir/.wh..wh..opq"] {
            let mut b = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_gnu();
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            h.set_mode(0o777);
            b.append_link(&mut h, "evil", host.path()).unwrap();
            let mut h = tar::Header::new_gnu();
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_size(0);
            h.set_mode(0o644);
            b.append_data(&mut h, format!("evil/{attack}"), &[][..]).unwrap();
            let blob = dir.path().join("blob");
            std::fs::write(&blob, gzip(b.into_inner().unwrap())).unwrap();
            let dest = dir.path().join("layer");
            let e = unpack_layer(&blob, "application/vnd.oci.image.layer.v1.tar+gzip", &dest, 1 << 20).unwrap_err();
            assert!(e.to_string().contains("lies under a link"), "{attack}: {e} {:?}", std::error::Error::source(&e));
            assert!(!dest.exists(), "{attack}: the layer is refused whole");
            assert!(leftovers(dir.path()).is_empty(), "{attack}: {:?}", leftovers(dir.path()));
        }
        let made: Vec<_> = std::fs::read_dir(host.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(made, ["victimdir"], "nothing was made in the host folder");
        let mut buf = [0u8; 8];
        let p = std::ffi::CString::new(host.path().join("victimdir").as_os_str().as_encoded_bytes()).unwrap();
        let n = std::ffi::CString::new("trusted.overlay.opaque").unwrap();
        // SAFETY: both strings are NUL-terminated and the buffer is ours.
        let r = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        assert!(r < 0, "the host folder was made opaque");
    }

    /// Attack: a gzip-bomb layer (3 MB growing to 3.1 GB) was unpacked without a cap. And a
    /// failed unpack left its partial layer behind (201 MB per try, retried by the service).
    #[test]
    fn a_gzip_bomb_layer_stops_at_the_cap_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let zeros = vec![0u8; 32 << 20];
        let blob = dir.path().join("blob");
        std::fs::write(&blob, layer(&[("bomb", &zeros[..]), ("more", &zeros[..])])).unwrap();
        assert!(std::fs::metadata(&blob).unwrap().len() < 1 << 20, "a small blob");
        let dest = dir.path().join("layer");
        let e = unpack_layer(&blob, "application/vnd.oci.image.layer.v1.tar+gzip", &dest, 40 << 20).unwrap_err();
        assert!(e.to_string().contains("maxLayerSize"), "{e}");
        assert!(!dest.exists());
        assert!(leftovers(dir.path()).is_empty(), "{:?}", leftovers(dir.path()));
        // Under the cap it unpacks.
        unpack_layer(&blob, "application/vnd.oci.image.layer.v1.tar+gzip", &dest, 80 << 20).unwrap();
        assert_eq!(std::fs::metadata(dest.join("more")).unwrap().len(), 32 << 20);
    }

    /// What a killed pull left (a download, an unpacking) goes when the store is next opened;
    /// what a live process is writing stays.
    #[test]
    fn a_killed_pull_leaves_nothing_for_long() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("images")).unwrap();
        let layers = store.layers_dir();
        let dead = format!("{}.blob2147483646-0", "a".repeat(64));
        let dead_dir = format!("{}.unpacking2147483646-3", "b".repeat(64));
        let live = format!("{}.blob{}-0", "c".repeat(64), std::process::id());
        std::fs::write(layers.join(&dead), b"partial").unwrap();
        std::fs::create_dir_all(layers.join(&dead_dir).join("usr")).unwrap();
        std::fs::write(layers.join(&live), b"in flight").unwrap();
        Store::open(dir.path().join("images")).unwrap();
        assert!(!layers.join(&dead).exists() && !layers.join(&dead_dir).exists());
        assert!(layers.join(&live).exists());
    }

    /// Attack: the image's `etc/passwd` was read on the host following links, with no size
    /// limit: a link to a host file resolved a user from it, a link to /dev/zero read 2.1 GB.
    #[test]
    fn an_image_file_is_read_from_its_layers_never_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let (top, low) = (dir.path().join("top"), dir.path().join("low"));
        std::fs::create_dir_all(top.join("etc")).unwrap();
        std::fs::create_dir_all(low.join("etc")).unwrap();
        std::fs::write(low.join("etc/passwd"), "app:x:1000:1000::/:/bin/sh\n").unwrap();
        let layers = [top.clone(), low.clone()];
        // The topmost layer that has it decides; one without it shows the one below.
        assert_eq!(read_image_file(&layers, "etc/passwd").as_deref(), Some("app:x:1000:1000::/:/bin/sh\n"));
        let host = dir.path().join("host-passwd");
        std::fs::write(&host, "hostuser:x:4242:4242::/:/bin/sh\n").unwrap();
        for target in [host.as_path(), Path::new("/dev/zero")] {
            std::os::unix::fs::symlink(target, top.join("etc/passwd")).unwrap();
            assert_eq!(read_image_file(&layers, "etc/passwd"), None, "through a link to {}", target.display());
            std::fs::remove_file(top.join("etc/passwd")).unwrap();
        }
        // A link on the way (`etc -> /etc`) is not followed either.
        std::fs::remove_dir(top.join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc", top.join("etc")).unwrap();
        assert_eq!(read_image_file(&layers, "etc/passwd"), None);
        std::fs::remove_file(top.join("etc")).unwrap();
        // Too large to be a passwd file.
        std::fs::create_dir_all(top.join("etc")).unwrap();
        std::fs::write(top.join("etc/passwd"), vec![b'x'; 2 << 20]).unwrap();
        assert_eq!(read_image_file(&layers, "etc/passwd"), None);
        std::fs::remove_file(top.join("etc/passwd")).unwrap();
        if nix::unistd::geteuid().is_root() {
            // A whiteout above hides the file below.
            nix::sys::stat::mknod(
                &top.join("etc/passwd"),
                nix::sys::stat::SFlag::S_IFCHR,
                nix::sys::stat::Mode::empty(),
                nix::sys::stat::makedev(0, 0),
            )
            .unwrap();
            assert_eq!(read_image_file(&layers, "etc/passwd"), None);
        }
    }

    fn fake_image(store: &Store, id_hex: &str, layers: &[&str], refs: &[&str]) {
        let layers: Vec<String> = layers.iter().map(|l| format!("sha256:{l}")).collect();
        for l in &layers {
            std::fs::create_dir_all(store.layer_dir(l).join("bin")).unwrap();
        }
        let rec = ImageRecord { id: format!("sha256:{id_hex}"), config: serde_json::json!({}), layers };
        std::fs::write(store.root.join("configs").join(format!("{id_hex}.json")), serde_json::to_vec(&rec).unwrap())
            .unwrap();
        let mut index = store.index();
        for r in refs {
            index.insert(r.to_string(), rec.id.clone());
        }
        store.save_index(&index).unwrap();
    }

    #[test]
    fn removing_an_image_keeps_what_others_use() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("images")).unwrap();
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        let (shared, only_a, only_b) = ("1".repeat(64), "2".repeat(64), "3".repeat(64));
        fake_image(&store, &a, &[&shared, &only_a], &["reg/app:1", "reg/app@sha256:aa"]);
        fake_image(&store, &b, &[&shared, &only_b], &["reg/app:2"]);
        // One of two names: the image stays.
        store.remove("reg/app:1", &[]).unwrap();
        assert!(store.image(&format!("sha256:{a}")).is_some() && store.layer_dir(&only_a).exists());
        // The last name: it goes, with the layer only it used; the shared one stays.
        store.remove("reg/app@sha256:aa", &[]).unwrap();
        assert!(store.image(&format!("sha256:{a}")).is_none());
        assert!(!store.layer_dir(&only_a).exists() && store.layer_dir(&shared).exists());
        // In use by a container: refused, nothing changed.
        let err = store.remove("reg/app:2", &[format!("sha256:{b}")]).unwrap_err();
        assert!(matches!(err, RemoveError::InUse(_)), "{err}");
        assert!(store.image("reg/app:2").is_some());
        assert!(matches!(store.remove("reg/none:1", &[]), Err(RemoveError::NoSuchImage(_))));
    }

    #[test]
    fn an_escaping_path_is_not_unpacked() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        // Written raw: the builder itself refuses `..`.
        let name = b"../escape";
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_cksum();
        b.append(&h, &b"x"[..]).unwrap();
        let blob = dir.path().join("blob");
        std::fs::write(&blob, b.into_inner().unwrap()).unwrap();
        let dest = dir.path().join("sub").join("layer");
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        unpack_layer(&blob, "application/vnd.oci.image.layer.v1.tar", &dest, 1 << 20).unwrap();
        assert!(!dir.path().join("sub").join("escape").exists());
    }
}
