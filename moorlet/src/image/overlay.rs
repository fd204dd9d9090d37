//! Each container's rootfs: an overlayfs over the image's layers.

use std::path::{Path, PathBuf};

use super::store::ImageStore;
use super::{Image, ImageError};

pub fn mount_rootfs(_store: &ImageStore, _image: &Image, container_dir: &Path) -> Result<PathBuf, ImageError> {
    Err(ImageError::format(
        container_dir.display().to_string(),
        "mount is not implemented yet",
    ))
}

pub fn unmount_rootfs(_container_dir: &Path) -> Result<(), ImageError> {
    Ok(())
}
