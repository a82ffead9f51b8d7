"""Tests of the Stripe emulator through the official stripe SDK over HTTP."""
