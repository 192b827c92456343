"""Dashboard sections that more than one page draws (Streamlit only; the logic is in `core`)."""
