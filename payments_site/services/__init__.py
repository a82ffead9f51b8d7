"""Business rules and transactions; blueprints and tasks call these, never the other way."""
