"""The stream worker's pure logic as it was before the issue-10 speed-up (commit 44de0f3).

A slow reference kept only as a test oracle: `tests/test_streams_logic_equivalence.py`
checks that `streams.partition` publishes byte-identical summaries, rollups and partials,
and stores byte-identical states, for the same input. Not imported by any shipped code.
"""
