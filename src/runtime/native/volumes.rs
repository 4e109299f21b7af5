//! Named volumes as Docker fills them: a volume that is still empty when a container first
//! mounts it gets a copy of what the image has at the mount point (files, modes, owners), so
//! an image's initial data and permissions (a database's data folder, a web root) are there.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Copies `target` of the container's root filesystem `rootfs` into the empty volume folder
/// `to`; nothing when the volume has anything in it or the image has nothing there.
pub fn fill_if_empty(rootfs: &Path, target: &str, to: &Path) -> std::io::Result<()> {
    // The image's symbolic links are resolved on the host: one pointing out of the root
    // filesystem (`/data -> /etc`) must not copy the host's files.
    let (Ok(from), Ok(root)) =
        (std::fs::canonicalize(rootfs.join(target.trim_start_matches('/'))), std::fs::canonicalize(rootfs))
    else {
        return Ok(());
    };
    if !from.starts_with(&root) {
        return Ok(());
    }
    let from = from.as_path();
    let Ok(meta) = std::fs::symlink_metadata(from) else { return Ok(()) };
    if !meta.is_dir() || std::fs::read_dir(to)?.next().is_some() {
        return Ok(());
    }
    copy_tree(from, to, &mut std::collections::HashMap::new())?;
    // The volume's root takes the owner and mode of the image's folder.
    owner_and_mode(to, &meta)
}

fn owner_and_mode(path: &Path, meta: &std::fs::Metadata) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, Some(meta.uid()), Some(meta.gid()))?;
    if !meta.file_type().is_symlink() {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    }
    Ok(())
}

/// `links` keeps the first copy of each file with several names, so hard links stay links.
fn copy_tree(
    from: &Path,
    to: &Path,
    links: &mut std::collections::HashMap<(u64, u64), std::path::PathBuf>,
) -> std::io::Result<()> {
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let meta = std::fs::symlink_metadata(&src)?;
        let ft = meta.file_type();
        if ft.is_dir() {
            std::fs::create_dir(&dst)?;
            copy_tree(&src, &dst, links)?;
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
        } else if ft.is_file() && meta.nlink() > 1 && links.contains_key(&(meta.dev(), meta.ino())) {
            std::fs::hard_link(&links[&(meta.dev(), meta.ino())], &dst)?;
            continue;
        } else if ft.is_file() {
            std::fs::copy(&src, &dst)?;
            if meta.nlink() > 1 {
                links.insert((meta.dev(), meta.ino()), dst.clone());
            }
        } else {
            continue; // devices, sockets and fifos are not copied (as Docker)
        }
        owner_and_mode(&dst, &meta)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_volume_is_filled_once_and_a_used_one_never() {
        let d = tempfile::tempdir().unwrap();
        let (img, vol) = (d.path().join("img"), d.path().join("vol"));
        std::fs::create_dir_all(img.join("sub")).unwrap();
        std::fs::write(img.join("sub/a"), "image data").unwrap();
        std::os::unix::fs::symlink("sub/a", img.join("link")).unwrap();
        std::fs::set_permissions(&img, std::fs::Permissions::from_mode(0o750)).unwrap();
        std::fs::create_dir(&vol).unwrap();
        fill_if_empty(d.path(), "/img", &vol).unwrap();
        assert_eq!(std::fs::read_to_string(vol.join("sub/a")).unwrap(), "image data");
        assert_eq!(std::fs::read_link(vol.join("link")).unwrap(), Path::new("sub/a"));
        assert_eq!(std::fs::metadata(&vol).unwrap().mode() & 0o777, 0o750);
        std::fs::write(vol.join("sub/a"), "the user's").unwrap();
        std::fs::write(img.join("sub/a"), "new image data").unwrap();
        fill_if_empty(d.path(), "/img", &vol).unwrap();
        assert_eq!(std::fs::read_to_string(vol.join("sub/a")).unwrap(), "the user's", "a used volume is never touched");
    }

    #[test]
    fn a_link_out_of_the_root_filesystem_copies_nothing() {
        let d = tempfile::tempdir().unwrap();
        let (root, outside, vol) = (d.path().join("rootfs"), d.path().join("host-secrets"), d.path().join("vol"));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("shadow"), "secret").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("data")).unwrap();
        std::fs::create_dir(&vol).unwrap();
        fill_if_empty(&root, "/data", &vol).unwrap();
        assert!(std::fs::read_dir(&vol).unwrap().next().is_none());
    }
}
