"""Data half of the pipeline: sources, download, safe archives, readers, prepared arrays."""
