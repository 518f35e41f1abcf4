"""Serving the trained model outside this project's CLI: an MLflow pyfunc model (`pyfunc.py`)."""
