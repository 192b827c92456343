"""Transfer Learning Studio: the dashboard's entrypoint (placeholder until the pages land)."""

import streamlit as st

st.title("Transfer Learning Studio")
