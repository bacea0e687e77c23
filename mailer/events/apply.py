"""events/apply."""
