"""pytest plugin: browser fixtures."""
