"""streamwatch: support_console — member playback lookup for support agents.

Start at `service.SupportService.lookup`; the Streamlit page is `app.py`, the CLI `cli.py`.
"""
