"""Inbound media: fetch jobs on `hub.media-fetch` and the fetcher that consumes them."""
