"""Grafana dashboards as code: JSON builders and provisioning with grafana-client."""
