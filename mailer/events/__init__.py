"""SES events: SNS envelopes (sns), SES payloads (ses), applying them to the store (apply)."""
