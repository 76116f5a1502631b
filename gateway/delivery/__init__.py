"""Delivery: workers that take accepted messages, sign them and hand them to a transport."""
