"""streamwatch: support_console."""
