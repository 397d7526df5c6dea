"""streamwatch: ingest."""
