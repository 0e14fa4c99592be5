"""castore: BLAKE3-addressed blobs and a Merkle DAG of directories. Knows nothing of Nix."""
