"""Payment providers behind one interface (Stripe, and the sandbox that stands in for it), webhooks, events."""
