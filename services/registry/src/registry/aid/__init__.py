"""A person's aid history: the disbursement service's payment events, kept per person."""
