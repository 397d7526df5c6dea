"""The one settings object of streamwatch.

Every process (CLI, collector, workers, sinks, apps, tests) reads its configuration from
`Settings`: environment variables prefixed `STREAMWATCH_` and an optional `.env` file.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class CdnEdge(BaseModel):
    """Where a CDN host or CMCD `cdn` id serves from: the OCA and its tier."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    oca_id: str = Field(min_length=1, max_length=128)
    cdn_tier: Literal["edge", "origin"] = "edge"


def _default_cache_dir() -> Path:
    # Fetched jars live outside the work tree so that nothing fetched can be committed.
    return Path.home() / ".cache" / "streamwatch"


class Settings(BaseSettings):
    """Configuration for every streamwatch process."""

    model_config = SettingsConfigDict(
        env_prefix="STREAMWATCH_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    # --- where things live -------------------------------------------------------------
    data_dir: Path = Field(
        default=Path(".streamwatch"),
        description="Server data, logs, pid files, the DuckDB warehouse and Parquet output.",
    )
    cache_dir: Path = Field(
        default_factory=_default_cache_dir,
        description="Jars fetched from Maven Central (outside git).",
    )

    # --- Kafka ---------------------------------------------------------------------------
    kafka_host: str = "127.0.0.1"
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    kafka_bootstrap_servers: str | None = Field(
        default=None,
        description="Comma-separated bootstrap servers; defaults to the local broker.",
    )
    kafka_partitions: int = Field(default=6, ge=1, description="Default partitions per topic.")
    kafka_partitions_by_topic: dict[str, int] = Field(
        default_factory=dict, description="Per-topic partition overrides, by topic name."
    )
    kafka_heap: str = "1g"
    topic_prefix: str = Field(
        default="",
        description="Prefix for every topic name (isolates tenants and test runs on one cluster).",
    )

    # --- search engine -----------------------------------------------------------------
    search_backend: Literal["opensearch", "elasticsearch"] = "opensearch"
    search_url: str | None = Field(
        default=None, description="Search engine URL; defaults to the local OpenSearch node."
    )
    search_username: str | None = None
    search_password: SecretStr | None = None
    search_api_key: SecretStr | None = None
    opensearch_port: int = 9200
    opensearch_transport_port: int = 9300
    opensearch_heap: str = "1g"
    # The real Elasticsearch (search_backend=elasticsearch) has ports of its own, so it can
    # run beside an OpenSearch on 9200.
    elasticsearch_port: int = 9201
    elasticsearch_transport_port: int = 9301
    elasticsearch_heap: str = "512m"
    elasticsearch_user: str = Field(
        default="streamwatch",
        description=(
            "System user Elasticsearch runs as when streamwatch runs as root (Elasticsearch "
            "refuses root); created by `infra up` if missing."
        ),
    )

    # --- Java for the local servers ------------------------------------------------------
    kafka_java_home: Path | None = Field(
        default=None, description="JDK for Kafka (17+); defaults to JAVA_HOME or `java` on PATH."
    )
    opensearch_java_home: Path | None = Field(
        default=None, description="JDK for OpenSearch 2.19 (17 or 21)."
    )
    elasticsearch_java_home: Path | None = Field(
        default=None, description="JDK for Elasticsearch 8.19 (17 or 21)."
    )
    infra_start_timeout_s: float = 120.0

    # --- Prometheus (Debian's `prometheus`, scraping every service's exporter) ------------
    prometheus_port: int = 9090
    prometheus_scrape_interval_s: int = Field(
        default=5, ge=1, description="How often Prometheus scrapes each service."
    )

    # --- service ports -------------------------------------------------------------------
    collector_host: str = "127.0.0.1"
    collector_port: int = 8088
    support_console_port: int = 8501
    dashboards_port: int = 8502
    player_page_port: int = Field(
        default=8503, description="The demo's real-player page (`streamwatch players serve`)."
    )
    metrics_port: int = Field(
        default=9464,
        ge=0,
        description=(
            "First Prometheus exporter port of the services (see streamwatch.service_metrics "
            "for each one's offset); 0 turns the exporters off."
        ),
    )

    # --- ingest limits and collector -------------------------------------------------------
    # Added by ingest/ (the HTTP collector and the event contract's hard limits).
    max_event_bytes: int = Field(
        default=64 * 1024, ge=256, description="Largest single event (its JSON bytes) accepted."
    )
    max_batch_bytes: int = Field(
        default=5 * 1024 * 1024,
        ge=1024,
        description=(
            "Largest request body, both as sent and after gzip decompression (the cap that "
            "stops a gzip bomb)."
        ),
    )
    max_batch_events: int = Field(default=1000, ge=1, description="Most events in one batch.")
    allowed_clock_skew_s: float = Field(
        default=3600.0,
        gt=0,
        description=(
            "An event_time further than this from received_at (future or past) is clamped to "
            "received_at +/- this and flagged with clock_skew_clamped, never dropped."
        ),
    )
    collector_rate_limit_rps: float = Field(
        default=50.0, gt=0, description="Sustained requests per second allowed per client."
    )
    collector_rate_limit_burst: int = Field(
        default=100, ge=1, description="Requests a client may send at once above the rate."
    )
    collector_trusted_proxy_hops: int = Field(
        default=0,
        ge=0,
        description=(
            "Reverse proxies in front of the collector that append to X-Forwarded-For; 0 "
            "ignores the header and rate-limits by the peer address."
        ),
    )
    collector_request_timeout_s: float = Field(
        default=30.0, gt=0, description="Longest one request may take, body read included."
    )
    collector_produce_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Longest the collector waits for Kafka to acknowledge a batch before 503.",
    )
    collector_retry_after_s: int = Field(
        default=5, ge=1, description="Retry-After seconds sent with a 503 when Kafka is down."
    )
    collector_linger_ms: int = Field(
        default=5, ge=0, description="Producer linger: how long a batch may wait to fill."
    )

    # --- what the collector derives (contract v2) ----------------------------------------
    # Added by ingest/ for real players: facts a player cannot know are derived here.
    geoip_city_db: Path | None = Field(
        default=None,
        description=(
            "MaxMind-format city or country database (GeoLite2-City/Country, ipinfo's free "
            "mmdb, or your own): client IP -> country and region. None: 'unknown'."
        ),
    )
    geoip_asn_db: Path | None = Field(
        default=None,
        description="MaxMind-format ASN database (GeoLite2-ASN, ipinfo): client IP -> ASN, ISP.",
    )
    collector_cdn_hosts: dict[str, CdnEdge] = Field(
        default_factory=dict,
        description=(
            "CMCD `cdn` ids and segment hosts -> OCA and tier, e.g. "
            '{"oca-ams-014.example.net": {"oca_id": "oca-ams-014"}, '
            '"*.origin.example.net": {"oca_id": "origin-eu", "cdn_tier": "origin"}}; '
            "a leading '*.' matches any subdomain. Unmapped: 'unknown'."
        ),
    )
    collector_cmcd_enabled: bool = Field(
        default=True,
        description="Take CMCD v2 event reports on POST /v1/cmcd; false answers 410 Gone, "
        "which tells players to stop reporting to this target for the session.",
    )
    cmcd_member_key: str | None = Field(
        default=None,
        description="CMCD custom key carrying the member id (e.g. 'com.example-mid'); "
        "without it CMCD reports are from 'anonymous'.",
    )
    cmcd_profile_key: str | None = Field(
        default=None, description="CMCD custom key carrying the profile id."
    )
    cmcd_device_key: str | None = Field(
        default=None, description="CMCD custom key carrying a device id."
    )
    cmcd_max_reports: int = Field(
        default=1000, ge=1, description="Most CMCD reports (lines) one POST /v1/cmcd may hold."
    )
    cmcd_session_cache: int = Field(
        default=100_000,
        ge=1,
        description=(
            "Sessions whose last CMCD play state the collector remembers (to tell a first "
            "frame from a rebuffer end or a resume); least recently used are forgotten."
        ),
    )
    cmcd_reorder_wait_s: float = Field(
        default=0.5,
        ge=0,
        le=10,
        description=(
            "How long a CMCD report waits for its session's earlier report (by sequence "
            "number) still on the way: players POST without waiting for answers, so a report "
            "can overtake the one before it. Later than that, the earlier one is dead-lettered "
            "as cmcd_out_of_order; a report that was lost costs its session's next one this wait."
        ),
    )
    custom_dimensions: list[str] = Field(
        default_factory=list,
        max_length=10,
        description=(
            "Names of up to 10 custom dimensions (experiment, variant, player_version...) "
            "carried from events (`dimensions`, or CMCD custom keys of the same name) into "
            "session summaries, warehouse columns and dashboard filters."
        ),
    )

    # --- indexers ----------------------------------------------------------------------
    # Added by indexers/ (search sink, warehouse sink, reconcile). Index names and consumer
    # groups derive from `topic_prefix` unless set, so test runs never share indices.
    search_index_prefix: str | None = Field(
        default=None,
        description="Prefix of every search index and alias ('streamwatch-' + topic_prefix).",
    )
    search_retention_days: int = Field(
        default=30, ge=1, description="Daily event indices older than this are deleted."
    )
    search_request_timeout_s: float = Field(default=30.0, gt=0)
    sink_batch_max_records: int = Field(
        default=5000, ge=1, description="Most records a sink takes into one bulk/append."
    )
    sink_batch_max_wait_ms: int = Field(
        default=500, ge=1, description="Longest a sink waits to fill a batch."
    )
    sink_retry_initial_s: float = Field(default=0.2, gt=0, description="First retry backoff.")
    sink_retry_max_s: float = Field(default=30.0, gt=0, description="Backoff ceiling.")
    warehouse_dir: Path | None = Field(
        default=None, description="Parquet warehouse root; defaults to <data_dir>/warehouse."
    )
    warehouse_flush_max_records: int = Field(
        default=50_000, ge=1, description="Rows the warehouse sink gathers before writing files."
    )
    warehouse_flush_interval_s: float = Field(
        default=10.0, gt=0, description="Longest the warehouse sink holds rows before writing."
    )

    # --- support console -----------------------------------------------------------------
    # Added by support_console/ (member lookup for support agents).
    support_email_salt: SecretStr = Field(
        default=SecretStr("streamwatch-local-dev-salt"),
        description=(
            "HMAC-SHA256 key for member email hashes in the member directory. Set a real "
            "secret in production; changing it requires re-loading the directory."
        ),
    )
    support_trusted_header: str | None = Field(
        default=None,
        description=(
            "Request header carrying the agent identity set by an authenticating proxy "
            "(e.g. X-Forwarded-User from an OIDC proxy). Set it only behind such a proxy."
        ),
    )
    support_agents_file: Path | None = Field(
        default=None,
        description=(
            "JSON file {agent: password hash} for the console's own login; defaults to "
            "<data_dir>/support/agents.json (written by `streamwatch support add-agent`)."
        ),
    )
    support_default_period_days: int = Field(default=7, ge=1, le=400)
    support_retention_days: int = Field(
        default=30, ge=1, le=400, description="Longest period one lookup may cover."
    )
    support_max_sessions: int = Field(
        default=500, ge=1, le=10_000, description="Most sessions one lookup returns."
    )

    # --- dashboards ----------------------------------------------------------------------
    # Added by dashboards/ (SRE Streamlit app, Prometheus exporter, Grafana as code).
    dashboards_refresh_s: int = Field(
        default=30, ge=0, description="Auto-refresh period of the SRE app; 0 turns it off."
    )
    dashboards_default_window_min: int = Field(
        default=180, ge=1, description="Default time range of the SRE app, in minutes."
    )
    dashboards_public_url: str | None = Field(
        default=None, description="URL of the SRE app; defaults to http://127.0.0.1:<port>."
    )
    support_console_public_url: str | None = Field(
        default=None,
        description="URL the SRE app links to for affected members; defaults to the local one.",
    )
    dashboards_behind_banner_s: float = Field(
        default=60.0,
        gt=0,
        description=(
            "Both apps show a 'data is N minutes behind' banner when the oldest record a "
            "consumer group of this deployment has not processed is older than this."
        ),
    )

    metrics_host: str = Field(
        default="127.0.0.1", description="Interface of the Prometheus exporter (metrics_port)."
    )
    grafana_url: str = "http://127.0.0.1:3000"
    grafana_token: SecretStr | None = None
    grafana_prometheus_url: str = Field(
        default="http://127.0.0.1:9090",
        description="Prometheus that scrapes streamwatch's exporters (Grafana datasource).",
    )
    grafana_folder: str = "streamwatch"

    @field_validator("custom_dimensions")
    @classmethod
    def _dimension_names(cls, names: list[str]) -> list[str]:
        # The names become warehouse columns (dim_<name>) and SQL identifiers.
        for name in names:
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", name):
                raise ValueError(
                    f"custom dimension {name!r}: use lower-case letters, digits and _ "
                    "(at most 40, starting with a letter)"
                )
        if len(set(names)) != len(names):
            raise ValueError("custom dimension names must be distinct")
        return names

    # --- alerts --------------------------------------------------------------------------
    # Added by alerts/ (rules, notifier, silences, backtest) and infra's Alertmanager.
    alertmanager_port: int = Field(
        default=9095, description="Local Alertmanager's port (9093 is Kafka's controller)."
    )
    alertmanager_binary: Path = Field(
        default=Path("/usr/bin/prometheus-alertmanager"),
        description="Alertmanager executable (Debian's prometheus-alertmanager package).",
    )
    alerts_rules_file: Path | None = Field(
        default=None, description="Alert rules (TOML); defaults to the shipped alerts/rules.toml."
    )
    alerts_minute_grace_min: int = Field(
        default=2,
        ge=1,
        description=(
            "A minute's rollups are judged once rollups this many minutes later have arrived "
            "(partials of other partitions may lag a little)."
        ),
    )
    alerts_catch_up_max_age_min: int = Field(
        default=60,
        ge=0,
        description=(
            "At start-up, alerts found while re-reading history are sent only if still "
            "firing or this recent (a new rule does not page about last week)."
        ),
    )
    alerts_retry_initial_s: float = Field(default=1.0, gt=0, description="First retry backoff.")
    alerts_retry_max_s: float = Field(default=30.0, gt=0, description="Retry backoff ceiling.")
    alerts_request_timeout_s: float = Field(default=10.0, gt=0, description="Per HTTP request.")
    alerts_public_url: str | None = Field(
        default=None,
        description="Link put in notifications; defaults to the SRE dashboards' incidents page.",
    )

    # --- demo ----------------------------------------------------------------------------
    # Added by the demo (`streamwatch demo up`): how hard the live stub drives the pipeline.
    demo_rate: float = Field(
        # An OCA outage must be detectable: the busiest OCA then starts about 4 plays a
        # minute, over the detector's 10 plays in 3 minutes (at 100, about 1).
        default=400.0,
        gt=0,
        description=(
            "Events per simulated second of the demo's stub; a single worker must sustain "
            "rate x demo_speed with margin (see README)."
        ),
    )
    demo_members: int = Field(default=8000, ge=10, description="Members the demo simulates.")
    demo_speed: float = Field(
        default=1.0, gt=0, description="Simulated seconds per wall second of the demo's stub."
    )
    demo_warmup_s: float = Field(
        default=300.0,
        ge=0,
        description="Simulated seconds sent at once before the live part (detector history).",
    )
    demo_start: str | None = Field(
        default=None, description="The stub's --start (default: now); tests pin an hour."
    )
    demo_stub_seed: int | None = Field(
        default=None,
        description=(
            "The demo stub's seed; unset, each `demo up` draws a new one: a restarted demo "
            "with the last one's seed would send its event and session ids again, and the "
            "worker drops those as duplicates."
        ),
    )

    @property
    def bootstrap_servers(self) -> str:
        """Kafka bootstrap servers as clients want them."""
        return self.kafka_bootstrap_servers or f"{self.kafka_host}:{self.kafka_port}"

    @property
    def search_endpoint(self) -> str:
        """The search engine's base URL (the local node of the chosen backend by default)."""
        if self.search_url:
            return self.search_url
        if self.search_backend == "elasticsearch":
            return f"http://127.0.0.1:{self.elasticsearch_port}"
        return f"http://127.0.0.1:{self.opensearch_port}"

    @property
    def prometheus_url(self) -> str:
        """The local Prometheus server."""
        return f"http://127.0.0.1:{self.prometheus_port}"

    def topic(self, name: str) -> str:
        """The real topic name for a logical one from `streamwatch.topics`."""
        return f"{self.topic_prefix}{name}"

    def partitions_for(self, topic: str) -> int:
        """Partition count for logical `topic`, honouring per-topic overrides."""
        return self.kafka_partitions_by_topic.get(topic, self.kafka_partitions)

    @property
    def logs_dir(self) -> Path:
        """Log files of every process started by streamwatch."""
        return self.data_dir / "logs"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once from the environment)."""
    return Settings()
