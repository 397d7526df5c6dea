"""streamwatch: streamwatch."""
