//! Reading ISO 9660 images. PLACEHOLDER: interface only.
