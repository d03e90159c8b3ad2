"""Data: folder scanning, robust decoding, the uint8 cache, augmentation and imbalance tools."""
