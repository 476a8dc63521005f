"""One file per merchant; each is listed in `parsers.registry`."""
