"""The web app (FastAPI + Jinja2, server-rendered, no front-end build step)."""
