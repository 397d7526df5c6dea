"""Real players against a local ladder: ffmpeg-made HLS/DASH media and a segment server with faults."""
