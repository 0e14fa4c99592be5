"""store: the Nix layer over castore (store paths, NAR, narinfo, PathInfo)."""
