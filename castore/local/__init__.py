"""The embedded local store (`local:///abs/dir`): LMDB metadata, FastCDC chunks, zstd pack files.

Layout of the store directory:
    meta/   the LMDB environment: `chunks` (chunk digest -> location in a pack), `blobs`
            (chunk lists of blobs of several chunks), `meta` (format, chunking), and the
            records of other layers (path infos)
    packs/  append-only pack files of zstd frames, each written by one process at a time

Chunks are file contents and directory encodings alike: both are addressed by the
BLAKE3 of their bytes.
"""
