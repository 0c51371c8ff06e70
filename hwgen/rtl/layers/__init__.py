"""One Amaranth component per layer kind (the same file names as hwgen/layers/)."""
