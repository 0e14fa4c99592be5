"""Real servers the tests start themselves (PostgreSQL, object storage), as pytest fixtures."""
