"""The dashboard's sections, one module per section a page draws, and what pages share
(`state`: session keys; `images`: rows of photos). Streamlit only; the logic is in `core`."""
