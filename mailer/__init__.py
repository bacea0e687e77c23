"""mailer: the delivery pipeline for the This Week in Rust newsletter."""

__version__ = "0.1.0"
