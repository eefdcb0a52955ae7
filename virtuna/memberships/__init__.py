"""Whop memberships: the client of Whop's API that the sync-whop job reads them with."""
