"""streamwatch platform stub: simulated players with fault scenarios and ground truth.

    streamwatch stub run --target kafka --rate 2000 --duration 600 --scenario oca_outage
    streamwatch stub run --target file --speed 0 --truth --seed 7      # offline, deterministic
    streamwatch stub scenarios                                          # what each fault hits

Modules, one job each:

- `population`  members (emails, profiles, devices), titles with bitrate ladders, ISPs,
  OCAs per ISP and region plus an origin fallback, the regions' daily load curve;
- `player`      one session as a generator of events: startup, throughput walk, ABR with
  hysteresis, buffer and rebuffers, pauses, seeks, errors, abandonment, playback_end;
- `error_codes` which catalog codes strike where and how often (meaning comes from
  `ingest/error_catalog.json`);
- `scenarios`   faults on one dimension value for a window, and their ground truth;
- `generator`   arrivals and a heap of sessions: events in event-time order, deterministic;
- `sinks`       file, Kafka (batched, idempotent, acks=all), HTTP collector (gzip NDJSON);
- `runner`      pacing, ledger of acknowledged ids, run directory, summary;
- `truth`       the per-session answer key; `eventstats` the metrics read back from events.

The public contract for other boxes: `generator.StubRun` / `RunOptions`, `truth.SessionTruth`,
`scenarios.ScenarioTruth`, `population.member_record`, and the run directory layout
documented in `runner`.
"""
