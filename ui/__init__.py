"""Dashboard sections, one module each: drawn by the pages (Streamlit only; the logic is in `core`)."""
