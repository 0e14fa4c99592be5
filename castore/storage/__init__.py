"""The two storage interfaces under the embedded engine, and their backends.

- `packs.PackStore`: immutable pack files of compressed frames, named by their BLAKE3
  (`packs_fs`: a directory; `packs_memory`: in-process). Object storage comes next.
- `metadata.MetadataStore`: every record the layers keep, in named tables, written in one
  atomic, durable transaction per commit (`metadata_lmdb`: LMDB; `metadata_memory`:
  in-process). PostgreSQL comes next.

The engine above (castore/local/) chunks, frames, compresses and keeps deltas; it knows
neither backend. Its rule for a commit, "data durable before any record naming it", holds
because it puts packs before the commit that names them.
"""
