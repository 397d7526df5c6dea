"""streamwatch: indexers."""
