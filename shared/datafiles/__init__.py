"""Training-data files, read and checked with numpy and Pillow only (no torch), by the API
when a dataset is uploaded and by the worker when a job reads it.

- `roots`: which worker folders a job may read at all;
- `confine`: opening files and folders so that a link cannot lead out of those roots;
- `errors`: `DataFileError`, what every reader raises;
- `formats`: which format a file is, what it holds (`inspect_data`), idx and `.npz` readers;
- `images`: images in folders and archives, read safely (size, member and bomb limits);
- `shard_index` and `shards`: a sharded image dataset's checked index, and writing a folder
  or archive as tar shards once, to be streamed rather than read whole.
"""
