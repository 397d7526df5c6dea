"""The simulated control plane a play goes through before its first frame.

gateway -> playback (entitlement, device, region checks; EVCache in front) -> manifest
(EVCache in front) -> steering (OCA selection), then gateway -> license (DRM); plus the
member's login/signup and browse/search/home requests. Every call is a `contract.spans.Span`.
"""
