//! Layer unpacking.

use std::path::Path;

use super::digest::Digest;
use super::ImageError;

pub(crate) fn unpack(blob: &Digest, _src: &Path, _diff_id: &Digest, _dest: &Path) -> Result<u64, ImageError> {
    Err(ImageError::format(blob.to_string(), "unpack is not implemented yet"))
}
