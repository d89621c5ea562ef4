//! FAT images for the EFI system partition. PLACEHOLDER: interface only.
