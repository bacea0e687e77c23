"""events/ses."""
