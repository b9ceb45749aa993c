"""A hostile model plugin for the sandbox tests (see the README beside this package)."""
