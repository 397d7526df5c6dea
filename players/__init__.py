"""Real players on a local ladder: ffmpeg-made HLS/DASH media, a segment server with faults."""
