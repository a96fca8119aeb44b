"""The reference workspace that `mapsync init` writes: links to the repository's own mapsync.yaml and
mappings/, so the package ships exactly what the repository tests (package data, like mapsync.schemas)."""
