"""The built-in mlp networks, copied as a code bundle (see the README beside this package)."""
