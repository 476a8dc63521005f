"""Route modules, one per area; web/app.py includes them."""
