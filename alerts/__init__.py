"""Alerts: rules as code over the QoE minute rollups and the detector's incidents, a notifier
that delivers them (webhook, Slack, PagerDuty, Alertmanager), silences, acknowledgements and
backtesting."""
