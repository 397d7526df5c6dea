"""streamwatch: dashboards."""
