"""Code bundles: researchers' own Python packages, uploaded as a zip or tar.gz, run as GAN
plugins and training scripts.

- `archive`: reading an archive member by member, safely (links, names, sizes, counts), for
  the API's upload check and the worker's unpacking alike;
- `modules`: which modules a bundle makes importable, from its file names;
- `bundles`: upload, list, read, share and delete (content stored once per SHA-256, rows per
  owner);
- `usage`: which unfinished jobs name a bundle;
- `references`: the check a spec naming a bundle passes at submission.

Nothing here imports the bundle's code: the API never runs it.
"""
