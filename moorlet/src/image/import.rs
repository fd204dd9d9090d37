//! Import of an OCI layout directory, an oci-archive tar or a docker-archive tar.

use std::path::Path;

use super::store::ImageStore;
use super::{Image, ImageError};

pub(crate) fn import(_store: &ImageStore, path: &Path) -> Result<Vec<Image>, ImageError> {
    Err(ImageError::format(
        path.display().to_string(),
        "import is not implemented yet",
    ))
}
