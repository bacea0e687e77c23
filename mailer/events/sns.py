"""events/sns."""
