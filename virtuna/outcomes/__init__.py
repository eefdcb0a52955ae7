"""Outcome collection: linking analyses to the videos they became, 48 hours before scraping."""
