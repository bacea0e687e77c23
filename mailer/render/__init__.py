"""Issue → MJML → HTML (inlined) and plaintext, once per issue; personalised per recipient."""
