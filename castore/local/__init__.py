"""The embedded local store (`local:///abs/dir`): FastCDC chunks in zstd frames, over a
MetadataStore and a PackStore (castore/storage/).

    engine.py    chunks: framing, compression, deltas, reads ahead; the order of a commit
    records.py   every layer's records: staged, visible to this process, batched, committed
    packs.py     the open pack in memory, sealing it into the PackStore, pack numbers -> names
    frames.py    frames of neighbouring chunks, and reading chunks out of them
    chunker.py   FastCDC; deltas.py: similar chunks as zstd deltas; readahead.py: ordered reads
    workers.py   the few threads that decompress frames ahead and compress new ones (lighter than concurrent.futures)
    registry.py  one engine per store directory and process: LMDB in meta/, packs in packs/

Chunks are file contents and directory encodings alike: both are addressed by the
BLAKE3 of their bytes.
"""
