"""Small datasets generated in code (or shipped in ``attnkit/data/``): no downloads, fixed seeds."""
