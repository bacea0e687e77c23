"""pytest plugin: ses_peer fixtures."""
