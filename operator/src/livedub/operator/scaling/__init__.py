"""The autoscaler's parts: scrape targets, metrics parsing, the scraper, and the pure decision."""
