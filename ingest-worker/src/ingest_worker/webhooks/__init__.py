"""The webhook receiver: verify, record durably, answer 202; processing happens apart (processor.py)."""
