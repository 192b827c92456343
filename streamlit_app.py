"""Transfer Learning Studio: the dashboard's entrypoint, the frame around the pages.

streamlit run streamlit_app.py
"""

import streamlit as st

st.set_page_config(
    page_title="Transfer Learning Studio", page_icon=":material/model_training:", layout="wide"
)

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/data.py", title="Data", icon=":material/photo_library:"),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/checkpoints.py", title="Checkpoints", icon=":material/inventory_2:"),
    st.Page("pages/predict.py", title="Predict", icon=":material/image_search:"),
]

st.navigation(PAGES).run()
