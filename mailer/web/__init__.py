"""The web app: public subscription endpoints, the SNS web hook, the operator pages.
An entry point: nothing in mailer imports it."""
