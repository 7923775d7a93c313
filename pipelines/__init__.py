"""texfarm's orchestration: manifests, storage, Ray actors, catalog and CLI (no tensor math)."""
