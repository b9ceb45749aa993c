"""ringgan: a 2-D GAN of one's own for ganforge's `custom` model family (see README.md)."""
