"""One function per scheduled job; the notebooks in notebooks/ call these."""
