"""Episodes: the durable queue that keeps every captured episode until it is distilled."""
