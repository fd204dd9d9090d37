//! Pulls from a registry v2.

use super::store::ImageStore;
use super::{Image, ImageError};

pub(crate) fn pull(_store: &ImageStore, reference: &str) -> Result<Image, ImageError> {
    Err(ImageError::format(reference, "pull is not implemented yet"))
}
