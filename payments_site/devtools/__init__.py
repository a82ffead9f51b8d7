"""Development and test tooling: the embedded Redis, the SMTP sink and the offline dev stack."""
