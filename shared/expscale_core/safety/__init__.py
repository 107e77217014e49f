"""Safety: screens that keep lessons that look like prompt injections out of prompts."""
