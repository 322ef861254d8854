"""Buffer stock: warehouses, catalogue, lots, receipts, requests, shipments, distribution."""
