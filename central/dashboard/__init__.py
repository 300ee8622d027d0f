"""Static files of the operators' dashboard (served by central/server.py): HTML, JS, CSS."""
