"""Private spoken conversations with a persona from the browser (the ``/talk`` page)."""
