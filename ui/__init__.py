"""Dashboard sections, one module each: drawn by the pages (Streamlit only; the logic is in `core`).
`state` names the session keys pages share; `images` draws rows of photos and thumbnails."""
