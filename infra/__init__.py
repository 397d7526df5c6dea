"""streamwatch: infra."""
