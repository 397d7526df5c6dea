"""streamwatch: streams."""
