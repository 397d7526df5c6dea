"""streamwatch: platform_stub."""
