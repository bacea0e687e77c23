"""pytest plugin: web_peer fixtures."""
