"""Contract tests: the emulator and the app's Stripe calls held to Stripe's published schemas."""
