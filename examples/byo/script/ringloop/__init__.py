"""A researcher's own training loop for a 2-D GAN on eight Gaussians in a ring, run by
ganforge as a `script` job (examples/byo/script/README.md)."""
